// Scenario 6b: cache channels. A late subscriber gets the last event triggered while nobody was
// subscribed; a cache channel with nothing cached gives pusher-js's `pusher:cache_miss`.
import {
  connected,
  pusherClient,
  record,
  scenario,
  serverSdk,
  sleep,
  subscribed,
  waitFor,
} from './lib.mjs';

scenario('cache', async () => {
  const sdk = serverSdk();
  await sdk.trigger('cache-x', 'price', { v: 1 });
  await sdk.trigger('cache-x', 'price', { v: 2 });
  const cacheInfo = await (await sdk.get({ path: '/channels/cache-x', params: { info: 'cache' } })).json();

  const client = pusherClient();
  await connected(client);

  // pusher-js binds the cached event like any other; record() would miss one delivered
  // before it is called, so bind on the channel object before the subscription completes.
  const hits = [];
  const cached = client.subscribe('cache-x');
  cached.bind('price', (data) => hits.push(data));
  let cachedMisses = 0;
  cached.bind('pusher:cache_miss', () => cachedMisses++);
  await waitFor('cached event', (resolve) => cached.bind('price', resolve));

  const empty = client.subscribe('cache-empty');
  const missEvents = [];
  let emptyEvents = 0;
  empty.bind_global((event) => {
    if (!event.startsWith('pusher')) emptyEvents++;
  });
  const miss = await waitFor('pusher:cache_miss', (resolve) =>
    empty.bind('pusher:cache_miss', (data) => {
      missEvents.push(data ?? null);
      resolve(data ?? null);
    }),
  );

  // A live event on the cache channel reaches the subscriber and becomes the cached one.
  const live = record('cache-x live', cached);
  await sdk.trigger('cache-x', 'price', { v: 3 });
  await live.waitEvent('price');
  const late = pusherClient();
  await connected(late);
  const lateHits = [];
  const lateChannel = late.subscribe('cache-x');
  await waitFor('cached event for the second subscriber', (resolve) =>
    lateChannel.bind('price', (data) => {
      lateHits.push(data);
      resolve();
    }),
  );
  await sleep(200); // nothing else may follow the single cached event

  return {
    cache_info: cacheInfo,
    hits,
    cached_misses: cachedMisses,
    cached_subscribed: cached.subscribed,
    miss,
    miss_events: missEvents.length,
    empty_subscribed: empty.subscribed,
    empty_events: emptyEvents,
    late_hits: lateHits,
  };
});
