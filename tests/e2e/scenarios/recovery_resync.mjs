// Recovery that cannot succeed: overtone keeps 10 events per channel
// (OVERTONE_HISTORY_MAX_EVENTS=10) and 25 are published while three clients with the add-on
// (pusher-js 8, pusher-js 7, laravel-echo), each behind its own TCP proxy, are cut off. On
// reconnect overtone answers `recovered: false`; each client must call onResync exactly once,
// its channel must emit `overtone:resync` (Echo: `.listen('.overtone:resync')`), nothing old
// is delivered, and events published afterwards arrive normally.
import { check, env, scenario, serverSdk, waitUntil } from './lib.mjs';
import { CutProxy, cutWhile, publish, range, recoveringClient } from './recovery_lib.mjs';

const CHANNEL = 'recovery-resync';
const EVENT = 'tick';
const KINDS = ['pusher-js-8', 'pusher-js-7', 'laravel-echo'];

scenario(
  'recovery_resync',
  async () => {
    const sdk = serverSdk();
    const proxies = await Promise.all(KINDS.map(() => new CutProxy(env.port).start()));
    const clients = KINDS.map((kind, i) => recoveringClient(kind, proxies[i], CHANNEL, EVENT));
    await Promise.all(clients.map((client) => client.subscribed()));

    await publish(sdk, CHANNEL, EVENT, range(1, 5));
    await Promise.all(clients.map((client) => client.received(5)));
    const before = clients.map((client) => client.handle.position(CHANNEL));

    await cutWhile(proxies, 5, () => publish(sdk, CHANNEL, EVENT, range(6, 30), 20));

    await Promise.all(
      clients.map((client) =>
        waitUntil(
          `resync of ${client.kind}`,
          () =>
            client.timeline.includes('onResync') &&
            client.timeline.includes('overtone:resync') &&
            client.pusher.channel(CHANNEL)?.subscribed,
          30000,
        ),
      ),
    );
    const afterResync = clients.map((client) => client.handle.position(CHANNEL));
    await publish(sdk, CHANNEL, EVENT, range(31, 35));
    await Promise.all(
      clients.map((client) =>
        waitUntil(`event 35 on ${client.kind}`, () => client.events().includes(35)),
      ),
    );
    check(
      proxies.every((proxy) => proxy.accepted >= 2),
      'every client reconnected',
      proxies.map((proxy) => proxy.accepted),
    );

    return {
      clients: clients.map((client, i) => ({
        client: client.kind,
        timeline: client.timeline,
        resyncs: client.resyncs,
        position_before_cut: before[i],
        position_after_resync: afterResync[i],
        position_at_end: client.handle.position(CHANNEL),
        subscribes: proxies[i].subscribes(CHANNEL),
        successes: proxies[i]
          .successes(CHANNEL)
          .map(({ position, recovered }) => ({ position, recovered })),
        states: client.states,
      })),
    };
  },
  60000,
);
