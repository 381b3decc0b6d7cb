// Cluster scenario: a node joining later (a rolling deploy) learns the cluster's state. Ada
// (node 0) and Bob (node 1) are presence members, u1 is signed in on node 1, an event is cached
// on cache-x. At the stage "start-node" the Python side starts node 3 and answers with its
// port. On node 3: the API lists the members, Cy's `here` lists all of them (Ada and Bob see Cy
// join once, and nothing because of the new node itself), a watcher sees u1 online at signin,
// and a late subscriber gets the cached event.
import {
  apiGet,
  atNode,
  check,
  connected,
  echoClient,
  poll,
  pusherClient,
  recordFrames,
  scenario,
  sdkAt,
  sdkChannelAuthorization,
  sdkUserAuthentication,
  serverSdk,
  stage,
  waitFor,
  waitUntil,
} from './lib.mjs';

const ROOM = 'x';
const CHANNEL = `presence-${ROOM}`;
const CACHE = 'cache-x';
const ADA = { user_id: 1, user_info: { name: 'Ada' } };
const BOB = { user_id: 2, user_info: { name: 'Bob' } };
const CY = { user_id: 3, user_info: { name: 'Cy' } };

async function join(label, options, sdk, user) {
  const echo = echoClient({
    ...options,
    channelAuthorization: sdkChannelAuthorization(sdk, () => user),
  });
  const log = { label, here: null, joining: [], leaving: [], markers: [], errors: [] };
  const frames = recordFrames(label, echo.connector.pusher, (event) =>
    event.startsWith('pusher_internal:member_'),
  );
  echo
    .join(ROOM)
    .here((members) => (log.here = members))
    .joining((member) => log.joining.push(member))
    .leaving((member) => log.leaving.push(member))
    .listen('.marker', (data) => log.markers.push(data.n))
    .error((error) => log.errors.push(error));
  await waitUntil(`${label} here()`, () => log.here || log.errors.length);
  check(log.errors.length === 0, `${label} could not join`, log.errors);
  return { echo, log, frames };
}

async function signedIn(label, options, sdk, user) {
  const client = pusherClient({ ...options, userAuthentication: sdkUserAuthentication(sdk, user) });
  const log = { label, watchlist: [] };
  for (const name of ['online', 'offline']) {
    client.user.watchlist.bind(name, (event) =>
      log.watchlist.push({ name, user_ids: event.user_ids }),
    );
  }
  await connected(client);
  client.signin();
  await waitUntil(`${label} signed in`, () => client.user.serverToUserChannel?.subscribed === true);
  return { client, log };
}

const userIds = (body) => body.users.map((user) => user.id).sort();

async function membersOn(sdk, label, ids) {
  return poll(`${label} to list members ${ids}`, async () => {
    const body = await apiGet(sdk, `/channels/${CHANNEL}/users`);
    return JSON.stringify(userIds(body)) === JSON.stringify(ids) && body;
  });
}

async function cachedOn(sdk, label, data) {
  return poll(`${label} to cache ${data}`, async () => {
    const info = await apiGet(sdk, `/channels/${CACHE}`, { info: 'cache' });
    return info.cache?.data === data && info;
  });
}

const copy = (value) => JSON.parse(JSON.stringify(value));

scenario(
  'cluster_late_node',
  async () => {
    const sdks = [0, 1, 2].map((node) => sdkAt(node));
    const ada = await join('ada', atNode(0), sdks[0], ADA);
    await membersOn(sdks[1], 'node 1', ['1']);
    const bob = await join('bob', atNode(1), sdks[1], BOB);
    await waitUntil('ada sees bob join', () => ada.log.joining.length === 1);
    await signedIn('u1', atNode(1), sdks[1], { id: 'u1' });
    await sdks[2].trigger(CACHE, 'price', { v: 1 });
    for (const node of [0, 1]) await cachedOn(sdks[node], `node ${node}`, '{"v":1}');

    const { port } = await stage('start-node');
    check(Number.isInteger(port), 'the go-ahead must carry the new node port', port);
    const late = serverSdk({ port: String(port) });
    const lateNode = { wsPort: port };

    // The new node learned the members, the signed-in user and the cache from the others.
    const users = await membersOn(late, 'node 3', ['1', '2']);
    const cached = await cachedOn(late, 'node 3', '{"v":1}');
    const connections = (await apiGet(late, '/connections')).connections;

    const cy = await join('cy', lateNode, late, CY);
    const w = await signedIn('w', lateNode, late, { id: 'w', watchlist: ['u1'] });
    const subscriber = pusherClient(lateNode);
    await connected(subscriber);
    const prices = [];
    const channel = subscriber.subscribe(CACHE);
    channel.bind('price', (data) => prices.push(data));
    await waitFor('the cached event on node 3', (resolve) => channel.bind('price', resolve));

    await waitUntil('ada and bob see cy join', () => ada.log.joining.length === 2 && bob.log.joining.length === 1);
    await waitUntil('w sees u1 online', () => w.log.watchlist.length >= 1);
    // A marker through node 3 arrives after everything node 3 did (Cy's join included).
    await late.trigger(CHANNEL, 'marker', { n: 1 });
    await waitUntil('marker', () => [ada, bob, cy].every((c) => c.log.markers.includes(1)));

    const snapshot = (c) => ({ ...copy(c.log), frames: copy(c.frames.items) });
    return {
      users,
      cached,
      connections,
      ada: snapshot(ada),
      bob: snapshot(bob),
      cy: snapshot(cy),
      w: w.log,
      prices,
    };
  },
  30000,
);
