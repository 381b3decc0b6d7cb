// Clients without the add-on on channels with history: pusher-js 8 and pusher-js 7 on a
// public channel, pusher-js 8 on a presence channel, all through a TCP proxy that only
// watches. The wire shows the history fields (position, offsets) and no `recover`; the
// clients ignore them and receive every event, data intact, and the presence roster.
import {
  PusherJS,
  check,
  env,
  record,
  scenario,
  sdkChannelAuthorization,
  serverSdk,
  subscribed,
} from './lib.mjs';
import { CutProxy, PusherJS7, viaProxy } from './recovery_lib.mjs';

const CHANNEL = 'recovery-plain';
const PRESENCE = 'presence-recovery-plain';

scenario('recovery_plain', async () => {
  const sdk = serverSdk();
  const proxy = await new CutProxy(env.port).start();
  const user = (id) => () => ({ user_id: id, user_info: { name: `user ${id}` } });
  const clients = [
    new PusherJS(env.key, viaProxy(proxy)),
    new PusherJS7(env.key, viaProxy(proxy)),
    new PusherJS(
      env.key,
      viaProxy(proxy, { channelAuthorization: sdkChannelAuthorization(sdk, user('7')) }),
    ),
  ];
  try {
    const [a, b, c] = clients;
    const inboxA = record('pusher-js 8', await subscribed(a, CHANNEL));
    const inboxB = record('pusher-js 7', await subscribed(b, CHANNEL));
    const presence = await subscribed(c, PRESENCE);
    const inboxC = record('pusher-js 8 presence', presence);

    await sdk.trigger(CHANNEL, 'first', { n: 1, text: 'object data' });
    await sdk.trigger(CHANNEL, 'second', 'a plain string');
    await sdk.trigger(PRESENCE, 'third', { n: 3 });
    await Promise.all([inboxA.waitEvent('second'), inboxB.waitEvent('second')]);
    await inboxC.waitEvent('third');

    const events = proxy.frames('in', 'first').concat(proxy.frames('in', 'second'), proxy.frames('in', 'third'));
    check(events.length === 5, 'five event frames on the wire', events);
    return {
      a_events: inboxA.items,
      b_events: inboxB.items,
      c_events: inboxC.items,
      members: { count: presence.members.count, me: presence.members.me },
      offsets: events.map((item) => [item.frame.event, item.frame.channel, item.frame.offset]),
      subscribes: proxy.frames('out', 'pusher:subscribe').map((item) => item.frame.data),
      successes: proxy
        .frames('in', 'pusher_internal:subscription_succeeded')
        .map(({ frame }) => ({ channel: frame.channel, position: frame.position, data: frame.data })),
    };
  } finally {
    for (const client of clients) client.disconnect();
  }
});
