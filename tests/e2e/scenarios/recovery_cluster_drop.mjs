// Recovery on another node of a cluster (OVERTONE_PORTS: three nodes on one Redis): pusher-js 8
// with the add-on reaches node 0 through a TCP proxy. 20 events arrive live; the proxy then
// resets the connection and refuses new ones for at least 5 s while 200 more are published
// through the Node SDK, in blocks of 20 alternating between nodes 2 and 1; when it comes back
// it forwards to node 1. 20 more are published right after, racing the reconnect, and a last
// one once the client has them all. Every event must arrive once, in order, recovered by node 1
// from the history the cluster shares.
import { nodePort, scenario, waitUntil } from './lib.mjs';
import { cutWhile } from './recovery_lib.mjs';
import { Publisher, answers, lastConnection, subscribedThroughNodeZero } from './recovery_cluster_lib.mjs';

const CHANNEL = 'recovery-cluster-drop';
const EVENT = 'tick';

scenario(
  'recovery_cluster_drop',
  async () => {
    const { sdks, proxy, client, firstSocket, base } = await subscribedThroughNodeZero(
      'pusher-js-8',
      CHANNEL,
      EVENT,
    );
    const publisher = new Publisher(sdks, CHANNEL, EVENT, { node: 1, base });

    await publisher.publish(20);
    await client.received(20);
    const before = client.handle.position(CHANNEL);

    const { cut_ms: cutMs } = await cutWhile(proxy, 5, async () => {
      for (let block = 0; block < 10; block += 1) {
        await publisher.moveTo(block % 2 === 0 ? 2 : 1);
        await publisher.publish(20, 10);
      }
      proxy.retarget(nodePort(1)); // the network comes back through another node
    });
    const duringCut = client.events().length;
    const restored = Date.now();
    await publisher.moveTo(2);
    await publisher.publish(20);
    await client.received(240, 30000);
    const caughtUpMs = Date.now() - restored;
    // A duplicate or a late event would arrive before this last one.
    await publisher.publish(1);
    await waitUntil('event 241', () => client.events().includes(241));

    return {
      base_offset: base,
      received: client.events(),
      received_during_cut: duringCut,
      timeline_extra: client.timeline.filter((item) => typeof item !== 'number'),
      resyncs: client.resyncs,
      states: client.states,
      first_socket: firstSocket,
      last_socket: client.pusher.connection.socket_id,
      per_node: publisher.perNode(),
      proxy_targets: proxy.targets,
      proxy_refused: proxy.refused,
      subscribes: proxy.subscribes(CHANNEL),
      successes: answers(proxy, CHANNEL),
      position_before_cut: before,
      position_after: client.handle.position(CHANNEL),
      last: lastConnection(proxy, CHANNEL, EVENT),
      cut_ms: cutMs,
      caught_up_ms: caughtUpMs,
    };
  },
  60000,
);
