// The add-on against a server that keeps no history (OVERTONE_HISTORY_ENABLED=false): no
// position, no offsets, so nothing to recover from and no `recover` sent on a resubscribe;
// events arrive as usual. A channel started from a position anyway (a page rendered while
// history was on) gets `recovered: false` and one onResync.
import { check, env, scenario, serverSdk, waitUntil } from './lib.mjs';
import { CutProxy, publish, range, reachState, recoveringClient } from './recovery_lib.mjs';

const CHANNEL = 'recovery-off';
const STARTED = 'recovery-off-started';
const EVENT = 'tick';

scenario('recovery_off', async () => {
  const sdk = serverSdk();
  const proxy = await new CutProxy(env.port).start();
  const client = recoveringClient('pusher-js-8', proxy, CHANNEL, EVENT);
  const started = recoveringClient('pusher-js-7', proxy, STARTED, EVENT, {
    positions: { [STARTED]: { epoch: 'from-another-life', offset: 5 } },
  });
  await client.subscribed();
  await started.subscribed();
  await waitUntil('resync of the started channel', () => started.resyncs.length === 1);
  await publish(sdk, CHANNEL, EVENT, range(1, 3));
  await publish(sdk, STARTED, EVENT, [1]);
  await client.received(3);
  await started.received(1);
  const position = client.handle.position(CHANNEL);

  // A reconnect (the app disconnects and connects again): pusher-js resubscribes.
  client.pusher.disconnect();
  await reachState(client.pusher, 'disconnected');
  client.pusher.connect();
  await reachState(client.pusher, 'connected');
  await waitUntil('second subscription', () => proxy.successes(CHANNEL).length === 2);
  await publish(sdk, CHANNEL, EVENT, [4]);
  await waitUntil('event 4', () => client.events().includes(4));
  check(
    proxy.wire.every((item) => item.frame.offset === undefined),
    'no offset on the wire',
  );

  return {
    timeline: client.timeline,
    started_timeline: started.timeline,
    started_resyncs: started.resyncs,
    position,
    started_position: started.handle.position(STARTED),
    subscribes: proxy.subscribes(CHANNEL),
    started_subscribes: proxy.subscribes(STARTED),
    successes: proxy.successes(CHANNEL),
    started_successes: proxy.successes(STARTED),
  };
});
