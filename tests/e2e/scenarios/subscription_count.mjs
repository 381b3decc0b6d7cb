// Subscription counting (OVERTONE_SUBSCRIPTION_COUNT=true): pusher-js 8 and 7 clients follow
// the cluster-wide count of a public and a private channel (`channel.subscriptionCount` and
// the `pusher:subscription_count` binding) as clients join and leave; a presence channel gets
// no count; a raw client's own `pusher_internal:subscription_count` is refused and reaches no
// one. Clients are spread over the nodes of OVERTONE_PORTS, round robin (one node: all on it).
// COUNTS=off: the server does not count, and no client may see a count.
// Stage "counted" (counts {channel: n}) lets the Python side check the webhooks.
import PusherJS7 from 'pusher-js-7';

import {
  PusherJS,
  apiGet,
  atNode,
  check,
  connected,
  poll,
  ports,
  pusherClient,
  rawClient,
  recordFrames,
  scenario,
  sdkAt,
  sdkChannelAuthorization,
  serverSdk,
  sleep,
  stage,
  waitUntil,
} from './lib.mjs';

const COUNTING = process.env.COUNTS !== 'off';
const COUNT = 'pusher_internal:subscription_count';
// How long a count that must not come is given to show up anyway.
const WINDOW = 300;

const sdk = serverSdk();
const auth = {
  channelAuthorization: sdkChannelAuthorization(sdk, (socketId, name) =>
    name.startsWith('presence-') ? { user_id: socketId } : undefined,
  ),
};

let joined = 0;

/**
 * A `Build` client on the next node, subscribed to `name`, logging the counts pusher-js
 * reports (`counts`, from the binding) and the count frames it got (`frames`).
 */
async function join(label, name, Build = PusherJS) {
  const node = joined++ % ports.length;
  const client = pusherClient({ ...auth, ...atNode(node) }, Build);
  await connected(client);
  const frames = recordFrames(label, client, (event) => event === COUNT);
  const library = Build === PusherJS7 ? 'pusher-js 7' : 'pusher-js 8';
  const log = { label, node, library, counts: [] };
  const channel = client.subscribe(name);
  // Bound before the confirmation: the first count follows it at once.
  channel.bind('pusher:subscription_count', (data) => log.counts.push(data.subscription_count));
  await waitUntil(`${label} subscribed to ${name}`, () => channel.subscribed);
  return { client, channel, log, frames };
}

/**
 * Wait until every member reports `n` (COUNTS=off: at once; the wait on the presence channel
 * gives counts that must not come the time to show up anyway).
 */
async function countIs(members, n) {
  if (!COUNTING) return;
  await waitUntil(`${members.map((m) => m.log.label)} to count ${n}`, () =>
    members.every((m) => m.channel.subscriptionCount === n && m.log.counts.at(-1) === n),
  );
}

/** What a member saw so far: the binding's counts, `subscriptionCount`, the count frames. */
const seen = (member) =>
  JSON.parse(
    JSON.stringify({
      ...member.log,
      property: member.channel.subscriptionCount ?? null,
      frames: member.frames.items.map((frame) => [frame.channel, frame.data]),
    }),
  );

/** a joins `name`, then b and c together, then c leaves; what each saw at each step. */
async function comeAndGo(name, [buildA, buildB, buildC]) {
  const a = await join(`${name} a`, name, buildA);
  await countIs([a], 1);
  // Every node counts a before b and c join (else b could count itself alone).
  for (const index of ports.keys()) {
    await poll(`node ${index} to count a on ${name}`, async () => {
      const info = await apiGet(sdkAt(index), `/channels/${name}`, { info: 'subscription_count' });
      return info.subscription_count === 1;
    });
  }
  const [b, c] = await Promise.all([
    join(`${name} b`, name, buildB),
    join(`${name} c`, name, buildC),
  ]);
  await countIs([a, b, c], 3);
  const three = [a, b, c].map(seen);
  c.client.disconnect();
  await countIs([a, b], 2);
  return { members: [a, b], three, two: [a, b].map(seen) };
}

scenario('subscription_count', async () => {
  const news = await comeAndGo('news', [PusherJS, PusherJS7, PusherJS]);
  const chat = await comeAndGo('private-chat', [PusherJS, PusherJS, PusherJS]);

  // Presence: user_count serves there, no subscription count.
  const room = [await join('room a', 'presence-room'), await join('room b', 'presence-room')];
  await waitUntil('two members', () => room.every((m) => m.channel.members.count === 2));
  await sleep(WINDOW);

  // A raw client (node 0) sends a count of its own on news: refused, relayed to no one.
  const raw = await rawClient();
  raw.send('pusher:subscribe', { channel: 'news' });
  await raw.inbox.waitEvent('pusher_internal:subscription_succeeded');
  await countIs(news.members, 3);
  raw.send(COUNT, { subscription_count: 999 }, 'news');
  const refusal = await raw.inbox.waitEvent('pusher:error');
  // The marker comes after the forged count through every node: once it is there, so would be
  // the forged count.
  const newsMarkers = news.members.map((m) =>
    recordFrames(m.log.label, m.client, (event) => event === 'marker'),
  );
  await sdk.trigger('news', 'marker', {});
  await Promise.all(newsMarkers.map((inbox) => inbox.waitEvent('marker')));
  check(raw.socket.readyState === raw.socket.OPEN, 'the raw client is still connected');
  const rawCounts = raw.frames.filter((text) => JSON.parse(text).event === COUNT);

  await stage('counted', { counts: { news: 3, 'private-chat': 2 } });
  return {
    news: { three: news.three, two: news.two, after_raw: news.members.map(seen) },
    chat: { three: chat.three, two: chat.two },
    room: room.map(seen),
    refusal: refusal.data,
    raw_counts: rawCounts,
    states: [...news.members, ...chat.members, ...room].map((m) => m.client.connection.state),
  };
});
