// Cluster scenario 7: node 1 dies without a word. Echo presence members Ada (node 0), Ghost
// (node 1) and Cy (node 2); a pusher-js user `g` signed in on node 1, watched by W on node 2.
// At the stage "kill" the Python side SIGKILLs node 1. Within the node timeout, Ada and Cy see
// Ghost leave (once), W sees `g` offline, and the HTTP API of nodes 0 and 2 no longer count
// anything that lived on node 1.
import {
  apiGet,
  atNode,
  check,
  connected,
  echoClient,
  poll,
  ports,
  pusherClient,
  recordFrames,
  scenario,
  sdkAt,
  sdkChannelAuthorization,
  sdkUserAuthentication,
  stage,
  waitUntil,
} from './lib.mjs';

const ROOM = 'x';
const CHANNEL = `presence-${ROOM}`;
const ADA = { user_id: 1, user_info: { name: 'Ada' } };
const GHOST = { user_id: 9, user_info: { name: 'Ghost' } };
const CY = { user_id: 3, user_info: { name: 'Cy' } };

const sdks = ports.map((_, node) => sdkAt(node));
check(sdks.length === 3, 'OVERTONE_PORTS must list three nodes', ports);

async function join(label, node, user) {
  const echo = echoClient({
    ...atNode(node),
    channelAuthorization: sdkChannelAuthorization(sdks[node], () => user),
  });
  const log = { label, node, here: null, joining: [], leaving: [], markers: [], errors: [] };
  const frames = recordFrames(label, echo.connector.pusher, (event) =>
    event.startsWith('pusher_internal:member_'),
  );
  echo
    .join(ROOM)
    .here((members) => (log.here = members))
    .joining((member) => log.joining.push(member))
    .leaving((member) => log.leaving.push({ member, at: Date.now() }))
    .listen('.marker', (data) => log.markers.push(data.n))
    .error((error) => log.errors.push(error));
  await waitUntil(`${label} here()`, () => log.here || log.errors.length);
  check(log.errors.length === 0, `${label} could not join`, log.errors);
  return { echo, log, frames };
}

async function signedIn(label, node, user) {
  const client = pusherClient({
    ...atNode(node),
    userAuthentication: sdkUserAuthentication(sdks[node], user),
  });
  const log = { label, node, watchlist: [] };
  for (const name of ['online', 'offline']) {
    client.user.watchlist.bind(name, (event) =>
      log.watchlist.push({ name, user_ids: event.user_ids, at: Date.now() }),
    );
  }
  await connected(client);
  client.signin();
  await waitUntil(`${label} signed in`, () => client.user.serverToUserChannel?.subscribed === true);
  return { client, log };
}

const userIds = (body) => body.users.map((user) => user.id).sort();

async function membersOn(node, ids) {
  await poll(`node ${node} to list members ${ids}`, async () => {
    const body = await apiGet(sdks[node], `/channels/${CHANNEL}/users`);
    return JSON.stringify(userIds(body)) === JSON.stringify(ids);
  });
}

async function view(node) {
  return {
    users: userIds(await apiGet(sdks[node], `/channels/${CHANNEL}/users`)),
    channel: await apiGet(sdks[node], `/channels/${CHANNEL}`, {
      info: 'user_count,subscription_count',
    }),
    connections: (await apiGet(sdks[node], '/connections')).connections,
  };
}

const copy = (value) => JSON.parse(JSON.stringify(value));

scenario(
  'cluster_sigkill',
  async () => {
    const ada = await join('ada', 0, ADA);
    await membersOn(1, ['1']);
    const ghost = await join('ghost', 1, GHOST);
    await membersOn(2, ['1', '9']);
    const cy = await join('cy', 2, CY);
    const w = await signedIn('w', 2, { id: 'w', watchlist: ['g'] });
    const g = await signedIn('g', 1, { id: 'g' });
    await waitUntil('ada sees ghost and cy join', () => ada.log.joining.length === 2);
    await waitUntil('w sees g online', () => w.log.watchlist.length === 1);
    // Everything of node 1 has replicated to nodes 0 and 2 (5 connections, 3 members).
    for (const node of [0, 2]) {
      await poll(`node ${node} to count 5 connections`, async () => {
        return (await apiGet(sdks[node], '/connections')).connections === 5;
      });
    }
    const before = [await view(0), await view(2)];

    await stage('kill', { channel: CHANNEL });
    // The Python side SIGKILLed node 1 before resuming: no `bye`, only the node timeout.
    await waitUntil(
      'ada and cy see ghost leave',
      () => ada.log.leaving.length >= 1 && cy.log.leaving.length >= 1,
      8000,
    );
    await waitUntil('w sees g offline', () => w.log.watchlist.length >= 2, 8000);
    // Ada's and Cy's nodes have forgotten node 1: their API says so at once.
    const after = [await view(0), await view(2)];

    // Markers through both survivors: any duplicate member_removed would precede them.
    await sdks[0].trigger(CHANNEL, 'marker', { n: 1 });
    await sdks[2].trigger(CHANNEL, 'marker', { n: 2 });
    await waitUntil('markers', () =>
      [ada, cy].every((c) => c.log.markers.includes(1) && c.log.markers.includes(2)),
    );

    return {
      before,
      after,
      ada: { ...copy(ada.log), frames: copy(ada.frames.items) },
      cy: { ...copy(cy.log), frames: copy(cy.frames.items) },
      ghost_here: copy(ghost.log.here),
      w: w.log,
      w_state: w.client.connection.state,
      g_node: g.log.node,
    };
  },
  30000,
);
