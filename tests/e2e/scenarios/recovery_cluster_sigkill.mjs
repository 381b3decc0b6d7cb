// The client's node dies (OVERTONE_PORTS: three nodes on one Redis): laravel-echo 2 with the
// add-on reaches node 0 through a TCP proxy while events are published continuously through
// node 2's HTTP API. The proxy is pointed at node 1 (a load balancer that knows node 0 is
// going away); at the stage "kill" the Python side SIGKILLs node 0. Echo reconnects through
// the proxy to node 1, recovers there what node 0 never sent, and then gets the live events:
// every event once, in order.
import { nodePort, scenario, stage, waitUntil } from './lib.mjs';
import { Publisher, answers, lastConnection, subscribedThroughNodeZero } from './recovery_cluster_lib.mjs';

const CHANNEL = 'recovery-cluster-sigkill';
const EVENT = 'tick';

scenario(
  'recovery_cluster_sigkill',
  async () => {
    const { sdks, proxy, client, firstSocket, base } = await subscribedThroughNodeZero(
      'laravel-echo',
      CHANNEL,
      EVENT,
    );
    // The add-on's position when the connection to node 0 is lost: what it recovers from.
    let lost = null;
    client.pusher.connection.bind('state_change', ({ previous }) => {
      if (previous === 'connected' && lost === null) lost = client.handle.position(CHANNEL);
    });

    const publisher = new Publisher(sdks, CHANNEL, EVENT, { node: 2, base });
    publisher.start(20);
    await client.received(30);
    proxy.retarget(nodePort(1));
    await stage('kill', { node: 0 });
    const killed = { published: publisher.count, received: client.events().length };

    await waitUntil('the resubscription on node 1', () => proxy.successes(CHANNEL).length === 2);
    const resubscribed = publisher.count;
    await waitUntil(
      '30 live events after the resubscription',
      () => publisher.count >= resubscribed + 30,
    );
    await publisher.stop();
    // A duplicate or a late event would arrive before this last one.
    await publisher.publish(1);
    const total = publisher.count;
    await client.received(total, 10000);
    await waitUntil(`event ${total}`, () => client.events().at(-1) === total);

    return {
      base_offset: base,
      total,
      killed,
      received: client.events(),
      timeline_extra: client.timeline.filter((item) => typeof item !== 'number'),
      resyncs: client.resyncs,
      states: client.states,
      first_socket: firstSocket,
      last_socket: client.pusher.connection.socket_id,
      per_node: publisher.perNode(),
      proxy_targets: proxy.targets,
      subscribes: proxy.subscribes(CHANNEL),
      successes: answers(proxy, CHANNEL),
      position_lost: lost,
      position_after: client.handle.position(CHANNEL),
      last: lastConnection(proxy, CHANNEL, EVENT),
    };
  },
  45000,
);
