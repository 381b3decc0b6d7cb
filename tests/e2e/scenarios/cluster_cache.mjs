// Cluster scenario 4: cache channels. Events triggered through node 0 while nobody is
// subscribed anywhere are cached on every node: a late subscriber on node 2 (then node 1) gets
// the last one. A live event through node 2 becomes the cached one everywhere, node 0 included.
import {
  apiGet,
  atNode,
  connected,
  poll,
  ports,
  pusherClient,
  scenario,
  sdkAt,
  waitFor,
  waitUntil,
} from './lib.mjs';

const CHANNEL = 'cache-x';

const sdks = ports.map((_, node) => sdkAt(node));

/** Wait until node `node`'s HTTP API reports `data` as the cached event; return its view. */
async function cachedOn(node, data) {
  return poll(`node ${node} to cache ${data}`, async () => {
    const info = await apiGet(sdks[node], `/channels/${CHANNEL}`, { info: 'cache' });
    return info.cache?.data === data && info;
  });
}

/** A pusher-js client on `node` subscribed to the cache channel, logging what it gets. */
async function lateSubscriber(label, node) {
  const client = pusherClient(atNode(node));
  await connected(client);
  const log = { label, node, prices: [], misses: 0 };
  // Bind before the subscription completes: the cached event follows subscription_succeeded.
  const channel = client.subscribe(CHANNEL);
  channel.bind('price', (data) => log.prices.push(data));
  channel.bind('pusher:cache_miss', () => log.misses++);
  await waitFor(`${label} subscribed`, (resolve) =>
    channel.bind('pusher:subscription_succeeded', resolve),
  );
  return { client, channel, log };
}

scenario('cluster_cache', async () => {
  await sdks[0].trigger(CHANNEL, 'price', { v: 1 });
  await sdks[0].trigger(CHANNEL, 'price', { v: 2 });
  // Replication takes one Redis round trip: wait until node 2 (then 1) has cached it.
  const cached = [];
  for (const node of [0, 1, 2]) cached.push(await cachedOn(node, '{"v":2}'));

  const c = await lateSubscriber('c', 2);
  await waitUntil('c gets the cached event', () => c.log.prices.length >= 1);
  const b = await lateSubscriber('b', 1);
  await waitUntil('b gets the cached event', () => b.log.prices.length >= 1);

  // A live event through node 2 reaches both and replaces the cached event on node 0 too.
  await sdks[2].trigger(CHANNEL, 'price', { v: 3 });
  await waitUntil('b and c get v3', () => b.log.prices.length >= 2 && c.log.prices.length >= 2);
  const cachedAfterLive = await cachedOn(0, '{"v":3}');
  const a = await lateSubscriber('a', 0);
  await waitUntil('a gets the cached event', () => a.log.prices.length >= 1);

  // A last live event through node 1: anything sent twice on subscription would precede it.
  await sdks[1].trigger(CHANNEL, 'price', { v: 4 });
  await waitUntil('everybody gets v4', () =>
    [a, b, c].every((s) => s.log.prices.some((price) => price.v === 4)),
  );

  // A cache channel with nothing cached anywhere: pusher:cache_miss, on node 1.
  const empty = b.client.subscribe('cache-empty');
  const miss = await waitFor('pusher:cache_miss', (resolve) =>
    empty.bind('pusher:cache_miss', (data) => resolve(data ?? null)),
  );

  return {
    cached,
    cached_after_live: cachedAfterLive,
    subscribers: [a.log, b.log, c.log],
    miss,
    empty_subscribed: empty.subscribed,
  };
});
