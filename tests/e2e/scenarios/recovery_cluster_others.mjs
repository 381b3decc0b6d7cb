// toOthers() across a reconnect to another node (OVERTONE_PORTS: three nodes on one Redis):
// pusher-js 8 with the add-on reaches node 0 through a TCP proxy and reads its socket id. The
// Node SDK publishes 1 (to everybody), 2 with `socket_id` = that id (Laravel's toOthers(): the
// app made that change itself), then the network is cut (the proxy resets the connection and
// holds new ones until it is back); while it is, 3 (everybody), 4 (again not to that
// connection) and 5 are published. The proxy comes back through node 1: the
// resubscribe names the previous connection (`recover.socket_id`), node 1 recovers and sends
// `pusher_internal:skipped` for 2 and 4 and the events 3 and 5; the app gets 1, 3, 5 and the
// live 6, never 2 or 4, and no resync.
import { nodePort, scenario, waitUntil } from './lib.mjs';
import { cutWhile } from './recovery_lib.mjs';
import { Publisher, answers, lastConnection, numbered, subscribedThroughNodeZero } from './recovery_cluster_lib.mjs';

const CHANNEL = 'recovery-cluster-others';
const EVENT = 'tick';

scenario(
  'recovery_cluster_others',
  async () => {
    const { sdks, proxy, client, base } = await subscribedThroughNodeZero(
      'pusher-js-8',
      CHANNEL,
      EVENT,
    );
    const channelEvents = [];
    client.pusher.channel(CHANNEL).bind_global((event) => channelEvents.push(event));
    const socketId = client.pusher.connection.socket_id;
    const publisher = new Publisher(sdks, CHANNEL, EVENT, { node: 1, base });
    const others = { socket_id: socketId };

    await publisher.publish(1);
    await publisher.publish(1, 0, others);
    await client.received(1);
    // Node 0 has event 2 (and did not send it to the client): its position says so.
    await numbered(sdks[0], CHANNEL, base + 2);
    const before = client.handle.position(CHANNEL);

    const whileCut = async () => {
      await publisher.moveTo(2);
      await publisher.publish(1);
      await publisher.publish(1, 0, others);
      await publisher.publish(1);
      proxy.retarget(nodePort(1));
    };
    const { cut_ms: cutMs } = await cutWhile(proxy, 5, whileCut, { hold: true });
    await waitUntil(
      'the resubscription on node 1',
      () => proxy.successes(CHANNEL).length === 2,
      30000,
    );
    await waitUntil('event 5', () => client.events().includes(5));
    const afterRecovery = client.handle.position(CHANNEL);
    // A late or duplicate event would arrive before this last one.
    await publisher.publish(1);
    await waitUntil('event 6', () => client.events().includes(6));

    return {
      base_offset: base,
      socket_id: socketId,
      last_socket: client.pusher.connection.socket_id,
      received: client.events(),
      channel_events: channelEvents,
      timeline_extra: client.timeline.filter((item) => typeof item !== 'number'),
      resyncs: client.resyncs,
      states: client.states,
      proxy_targets: proxy.targets,
      proxy_held: proxy.heldCount,
      proxy_refused: proxy.refused,
      subscribes: proxy.subscribes(CHANNEL),
      successes: answers(proxy, CHANNEL),
      first_offsets: proxy
        .frames('in', EVENT, CHANNEL)
        .filter((item) => item.conn === 1)
        .map((item) => item.frame.offset),
      position_before_cut: before,
      position_after_recovery: afterRecovery,
      position_at_end: client.handle.position(CHANNEL),
      last: lastConnection(proxy, CHANNEL, EVENT),
      cut_ms: cutMs,
    };
  },
  60000,
);
