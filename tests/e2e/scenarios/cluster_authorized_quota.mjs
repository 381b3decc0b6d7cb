// Cluster scenario: authorized connections (OVERTONE_AUTHORIZED_CONNECTIONS=true) with a quota
// of 2 (REVERB_APP_MAX_CONNECTIONS) over three nodes. Anonymous connections on every node do
// not use the quota; a signed-in client on node 0 and a private subscriber on node 1 fill it,
// cluster-wide: on node 2 a connection that signs in is closed with 4004 and a new one is
// refused with 4004. Once node 0's client is gone, node 2 takes a signed-in connection again.
import {
  apiGet,
  atNode,
  connected,
  errorCode,
  poll,
  pusherClient,
  scenario,
  sdkAt,
  sdkChannelAuthorization,
  sdkUserAuthentication,
  sleep,
  subscribed,
  waitUntil,
} from './lib.mjs';

const sdks = [0, 1, 2].map((node) => sdkAt(node));
// After this long a refused client that meant to reconnect would have.
const SETTLE = 500;

/** A pusher-js client on `node` that can sign in as `id` and subscribe to private channels. */
function client(label, node, id = label) {
  const pusher = pusherClient({
    ...atNode(node),
    userAuthentication: sdkUserAuthentication(sdks[node], { id }),
    channelAuthorization: sdkChannelAuthorization(sdks[node]),
  });
  const log = { label, node, states: [], errors: [] };
  pusher.connection.bind('state_change', ({ current }) => log.states.push(current));
  pusher.connection.bind('error', (error) => log.errors.push(errorCode(error)));
  return { pusher, log };
}

/** Sign `c` in and wait until the server has confirmed it. */
async function signedIn(c) {
  c.pusher.signin();
  await waitUntil(`${c.log.label} signed in`, () => c.pusher.user.serverToUserChannel?.subscribed);
}

/** Wait until pusher-js has given up on `c` (closed or refused, no reconnection). */
const givenUp = (c) =>
  waitUntil(`${c.log.label} to give up`, () =>
    ['disconnected', 'failed'].includes(c.pusher.connection.state) && c.log.errors.length,
  );

/** Wait until node 2's HTTP API counts `n` subscribers of `channel`. */
const subscribersOnNode2 = (channel, n) =>
  poll(`node 2 to count ${n} on ${channel}`, async () => {
    const info = await apiGet(sdks[2], `/channels/${channel}`, { info: 'subscription_count' });
    return info.subscription_count === n;
  });

const connectionsOnNode2 = async () => (await apiGet(sdks[2], '/connections')).connections;

scenario('cluster_authorized_quota', async () => {
  // Anonymous connections on every node, more than the quota, and one on node 2 that signs in
  // later: none is refused.
  const anonymous = [0, 1, 2].map((node) => client(`anonymous ${node}`, node));
  const late = client('late', 2);
  await Promise.all([...anonymous, late].map((c) => connected(c.pusher)));

  // Two authorized connections fill the quota: a signed-in client on node 0, then a private
  // subscriber on node 1 (allowed although four connections are open).
  const ada = client('ada', 0);
  await connected(ada.pusher);
  await signedIn(ada);
  await subscribed(ada.pusher, 'news'); // after the sign-in: a marker for the other nodes
  const bob = client('bob', 1);
  await connected(bob.pusher);
  await subscribed(bob.pusher, 'private-orders');
  // A node's messages arrive in order: once node 2 counts these subscriptions, it also
  // counts both authorizations.
  await subscribersOnNode2('news', 1);
  await subscribersOnNode2('private-orders', 1);

  // Node 2: the connection that signs in now is closed; a new connection is refused.
  late.pusher.signin();
  await givenUp(late);
  const refused = client('refused', 2);
  await givenUp(refused);
  await sleep(SETTLE);
  const full = { late: { ...late.log }, refused: { ...refused.log } };
  const anonymousStates = anonymous.map((c) => c.pusher.connection.state);

  // Ada leaves: node 2 has room for one signed-in connection again.
  const before = await connectionsOnNode2();
  ada.pusher.disconnect();
  // Ada's connection is counted out after her authorization.
  await poll('node 2 to count ada gone', async () => (await connectionsOnNode2()) === before - 1);
  const cy = client('cy', 2);
  await connected(cy.pusher);
  await signedIn(cy);
  await sleep(SETTLE);

  return {
    full,
    anonymous_states: anonymousStates,
    connections_when_full: before,
    ada: ada.log,
    bob: { ...bob.log, state: bob.pusher.connection.state },
    cy: { ...cy.log, state: cy.pusher.connection.state },
  };
});
