// Bootstrap from a position read over HTTP, as a page rendered by an app server does: the
// app reads `GET /apps/{id}/channels/{C}?info=position` (signed, Node SDK), events keep being
// published before any client exists, then clients start from that position and must receive
// exactly the events published after it, then live ones. pusher-js 8 gets the position
// through `install(pusher, {positions})`, laravel-echo through `handle.startFrom`, and
// pusher-js 7 starts a channel nothing was ever published to (position offset 0).
import { check, env, scenario, serverSdk, waitUntil } from './lib.mjs';
import { CutProxy, httpPosition, publish, range, recoveringClient } from './recovery_lib.mjs';

const CHANNEL = 'recovery-bootstrap';
const FRESH = 'recovery-bootstrap-fresh';
const EVENT = 'tick';

scenario('recovery_bootstrap', async () => {
  const sdk = serverSdk();
  const proxy = await new CutProxy(env.port).start();

  await publish(sdk, CHANNEL, EVENT, range(1, 3));
  const rendered = await httpPosition(sdk, CHANNEL); // the page shows events 1..3
  const fresh = await httpPosition(sdk, FRESH); // a page rendered before any event
  await publish(sdk, CHANNEL, EVENT, range(4, 10));
  await publish(sdk, FRESH, EVENT, range(1, 3));
  const again = await httpPosition(sdk, CHANNEL);
  check(again.epoch === rendered.epoch && again.offset === rendered.offset + 7, 'offsets', [
    rendered,
    again,
  ]);

  const viaOption = recoveringClient('pusher-js-8', proxy, CHANNEL, EVENT, {
    positions: { [CHANNEL]: rendered },
  });
  const viaStartFrom = recoveringClient('laravel-echo', proxy, CHANNEL, EVENT, {
    startFrom: rendered,
  });
  const fromFresh = recoveringClient('pusher-js-7', proxy, FRESH, EVENT, {
    positions: { [FRESH]: fresh },
  });
  const clients = [viaOption, viaStartFrom, fromFresh];
  await Promise.all(clients.map((client) => client.subscribed()));
  await viaOption.received(7);
  await viaStartFrom.received(7);
  await fromFresh.received(3);

  await publish(sdk, CHANNEL, EVENT, [11]);
  await publish(sdk, FRESH, EVENT, [4]);
  await Promise.all([
    waitUntil('event 11 on pusher-js 8', () => viaOption.events().includes(11)),
    waitUntil('event 11 on laravel-echo', () => viaStartFrom.events().includes(11)),
    waitUntil('event 4 on pusher-js 7', () => fromFresh.events().includes(4)),
  ]);

  return {
    rendered,
    fresh,
    subscribes: proxy.subscribes(CHANNEL),
    fresh_subscribes: proxy.subscribes(FRESH),
    successes: proxy.successes(CHANNEL).map(({ position, recovered }) => ({ position, recovered })),
    fresh_successes: proxy
      .successes(FRESH)
      .map(({ position, recovered }) => ({ position, recovered })),
    clients: clients.map((client) => ({
      client: client.kind,
      timeline: client.timeline,
      position: client.handle.position(client === fromFresh ? FRESH : CHANNEL),
    })),
  };
});
