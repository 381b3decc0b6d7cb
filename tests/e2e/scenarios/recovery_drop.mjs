// Recovery across a network drop: one client (OVERTONE_RECOVERY_CLIENT = pusher-js-8,
// pusher-js-7 or laravel-echo) with the add-on reaches overtone through a TCP proxy. 20 events
// arrive live; the proxy then resets the connection and refuses new ones for 5 s while 160
// more are published through the HTTP API (Node SDK); right after it comes back 20 more are
// published, racing the client's reconnect. Every one of the 200 (and a last one, 201) must arrive once, in order,
// and the wire must show the resubscribe carrying `recover` and overtone answering
// `recovered: true` followed by the missed events.
import { check, env, scenario, serverSdk, waitUntil } from './lib.mjs';
import { CutProxy, cutWhile, publish, range, recoveringClient } from './recovery_lib.mjs';

const KIND = process.env.OVERTONE_RECOVERY_CLIENT || 'pusher-js-8';
const CHANNEL = 'recovery-drop';
const EVENT = 'tick';

scenario(
  `recovery_drop ${KIND}`,
  async () => {
    const sdk = serverSdk();
    const proxy = await new CutProxy(env.port).start();
    const client = recoveringClient(KIND, proxy, CHANNEL, EVENT);
    await client.subscribed();
    const firstSocket = client.pusher.connection.socket_id;

    await publish(sdk, CHANNEL, EVENT, range(1, 20));
    await client.received(20);
    const before = client.handle.position(CHANNEL);
    const [first] = proxy.successes(CHANNEL);
    const base = first.position.offset; // 0 on a fresh server
    check(before !== null && before.offset === base + 20, 'position after 20 events', before);
    check(before.epoch === first.position.epoch, 'epoch of subscription_succeeded', [before, first]);

    const { cut_ms: cutMs } = await cutWhile(proxy, 5, async () => {
      await publish(sdk, CHANNEL, EVENT, range(21, 180), 20);
      return null;
    });
    const duringCut = client.events().length;
    check(duringCut === 20, 'nothing arrives while the network is cut', client.timeline);
    const restored = Date.now();
    await publish(sdk, CHANNEL, EVENT, range(181, 200));
    await client.received(200, 30000);
    const caughtUpMs = Date.now() - restored;
    // A duplicate or a late event would arrive before this last one.
    await publish(sdk, CHANNEL, EVENT, [201]);
    await waitUntil('event 201', () => client.events().includes(201));

    const subscribes = proxy.subscribes(CHANNEL);
    const successes = proxy.successes(CHANNEL);
    const last = successes[successes.length - 1];
    const lastConn = proxy.frames('in', 'pusher_internal:subscription_succeeded', CHANNEL).at(-1).conn;
    const replayedOffsets = proxy.wire
      .filter((item) => item.dir === 'in' && item.conn === lastConn && item.frame.event === EVENT)
      .map((item) => item.frame.offset);
    return {
      client: KIND,
      base_offset: base,
      received: client.events(),
      timeline_extra: client.timeline.filter((item) => typeof item !== 'number'),
      resyncs: client.resyncs,
      states: client.states,
      first_socket: firstSocket,
      last_socket: client.pusher.connection.socket_id,
      proxy_accepted: proxy.accepted,
      proxy_refused: proxy.refused,
      subscribes,
      successes: successes.map(({ position, recovered }) => ({ position, recovered })),
      position_before_cut: before,
      position_after: client.handle.position(CHANNEL),
      offsets_after_reconnect: replayedOffsets,
      last_position: last.position,
      cut_ms: cutMs,
      caught_up_ms: caughtUpMs,
    };
  },
  60000,
);
