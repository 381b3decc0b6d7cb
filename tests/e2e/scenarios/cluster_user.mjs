// Cluster scenarios 5 and 6: signed-in pusher-js users on different nodes. W (node 0) watches
// u1 and u2. u1 signs in on node 1: sendToUser through node 0 reaches it, W sees it online,
// terminateUserConnections through node 2 closes it (4009) and W sees it offline. u2 signs in
// on node 2 and node 1: W sees one `online`, and `offline` only when its last connection left.
//
// Ordering: a node's messages reach the others in order, so a sendToUser marker to W through
// node N arrives after everything node N did before it.
import {
  apiGet,
  atNode,
  connected,
  errorCode,
  poll,
  ports,
  pusherClient,
  scenario,
  sdkAt,
  sdkUserAuthentication,
  waitUntil,
} from './lib.mjs';

const sdks = ports.map((_, node) => sdkAt(node));

/** A pusher-js client on `node` signed in as `user`, logging what pusher-js reports. */
async function signedIn(label, node, user) {
  const client = pusherClient({
    ...atNode(node),
    userAuthentication: sdkUserAuthentication(sdks[node], user),
  });
  const log = { label, node, states: [], errors: [], received: [], markers: [], watchlist: [] };
  client.connection.bind('state_change', ({ current }) => log.states.push(current));
  client.connection.bind('error', (error) => log.errors.push(errorCode(error)));
  client.user.bind('ev', (data) => log.received.push(data));
  client.user.bind('marker', (data) => log.markers.push(data.n));
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

const copy = (value) => JSON.parse(JSON.stringify(value));

async function connectionsOn(node, n) {
  await poll(`node ${node} to count ${n} connections`, async () => {
    return (await apiGet(sdks[node], '/connections')).connections === n;
  });
}

scenario('cluster_user', async () => {
  const w = await signedIn('w', 0, { id: 'w', watchlist: ['u1', 'u2'] });
  let markers = 0;
  /** sendToUser a marker to W through `node`; wait until W has it. */
  const marker = async (node) => {
    const n = ++markers;
    await sdks[node].sendToUser('w', 'marker', { n });
    await waitUntil(`marker ${n} through node ${node}`, () => w.log.markers.includes(n));
  };

  // 6: u1 signs in on node 1 and W, on node 0, sees it online.
  const u1 = await signedIn('u1', 1, { id: 'u1', user_info: { name: 'One' } });
  await waitUntil('w sees u1 online', () => w.log.watchlist.length === 1);

  // 5: sendToUser through node 0 reaches u1 on node 1; through node 2, W on node 0.
  const sentU1 = await sdks[0].sendToUser('u1', 'ev', { msg: 'hello u1' });
  const sentW = await sdks[2].sendToUser('w', 'ev', { msg: 'hello w' });
  await waitUntil('ev on u1 and w', () => u1.log.received.length && w.log.received.length);

  // 6: u2 on node 2, then again on node 1: one `online` for W.
  const u2a = await signedIn('u2a', 2, { id: 'u2' });
  await waitUntil('w sees u2 online', () => w.log.watchlist.length === 2);
  const u2b = await signedIn('u2b', 1, { id: 'u2' });
  await marker(1);
  // u2's connection on node 2 leaves: u2 is still online (node 1), so no `offline`.
  u2a.client.disconnect();
  await connectionsOn(2, 3);
  await marker(2);
  const beforeOffline = copy(w.log);
  // u2's last connection (node 1) leaves: `offline`.
  u2b.client.disconnect();
  await waitUntil('w sees u2 offline', () => w.log.watchlist.length === 3);

  // 5: terminateUserConnections through node 2 closes u1's connection on node 1 with 4009.
  const terminated = await sdks[2].terminateUserConnections('u1');
  await waitUntil('u1 disconnected', () => u1.client.connection.state === 'disconnected');
  await waitUntil('w sees u1 offline', () => w.log.watchlist.length === 4);
  for (const node of [0, 1, 2]) await connectionsOn(node, 1);
  await marker(1);

  return {
    send_status: [sentU1.status, sentW.status],
    terminate_status: terminated.status,
    before_offline: beforeOffline,
    w: w.log,
    w_state: w.client.connection.state,
    u1: u1.log,
    u2a: u2a.log,
    u2b: u2b.log,
  };
});
