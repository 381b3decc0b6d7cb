// Cluster scenario 3: presence through laravel-echo with members on three nodes. Ada joins on
// node 0, Bob on node 1, Cy on node 2, then Bob again on node 2. `here`, `joining` and `leaving`
// must be those of one server, and the HTTP API of every node gives the cluster-wide members.
//
// Ordering: replication takes one Redis round trip, so before a member joins, the HTTP API of
// its node must already report the earlier members. Events from one node reach the others in
// order, so a marker triggered through node N arrives after everything node N did before.
import {
  apiGet,
  atNode,
  check,
  echoClient,
  poll,
  ports,
  recordFrames,
  scenario,
  sdkAt,
  sdkChannelAuthorization,
  waitUntil,
} from './lib.mjs';

const ROOM = 'x';
const CHANNEL = `presence-${ROOM}`;
const ADA = { user_id: 1, user_info: { id: 1, name: 'Ada' } };
const BOB = { user_id: 2, user_info: { id: 2, name: 'Bob' } };
const CY = { user_id: 3, user_info: { id: 3, name: 'Cy' } };

const sdks = ports.map((_, node) => sdkAt(node));
check(sdks.length === 3, 'OVERTONE_PORTS must list three nodes', ports);

/** An Echo client on `node` joined to the room as `user`, logging what Echo reports. */
async function join(label, node, user) {
  const echo = echoClient({
    ...atNode(node),
    channelAuthorization: sdkChannelAuthorization(sdks[node], () => user),
  });
  const log = { label, node, here: null, joining: [], leaving: [], markers: [], errors: [] };
  // The member frames as sent, before pusher-js deduplicates them.
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

const userIds = (body) => body.users.map((user) => user.id).sort();

/** Wait until the HTTP API of `node` lists exactly `ids` as members. */
async function membersOn(node, ids) {
  await poll(`node ${node} to list members ${ids}`, async () => {
    const body = await apiGet(sdks[node], `/channels/${CHANNEL}/users`);
    return JSON.stringify(userIds(body)) === JSON.stringify(ids);
  });
}

/** Wait until node `node` counts `n` connections (it has handled every close before). */
async function connectionsOn(node, n) {
  await poll(`node ${node} to count ${n} connections`, async () => {
    return (await apiGet(sdks[node], '/connections')).connections === n;
  });
}

/** Trigger a marker through `node`; wait until every given client has it. */
async function marker(n, node, clients) {
  await sdks[node].trigger(CHANNEL, 'marker', { n });
  await waitUntil(`marker ${n}`, () => clients.every((c) => c.log.markers.includes(n)));
}

/** What every node's HTTP API says about the room. */
async function views() {
  const result = [];
  for (const sdk of sdks) {
    result.push({
      users: await apiGet(sdk, `/channels/${CHANNEL}/users`),
      channels: await apiGet(sdk, '/channels', {
        filter_by_prefix: 'presence-',
        info: 'user_count',
      }),
      channel: await apiGet(sdk, `/channels/${CHANNEL}`, {
        info: 'user_count,subscription_count',
      }),
      connections: (await apiGet(sdk, '/connections')).connections,
    });
  }
  return result;
}

const snapshot = (clients) =>
  Object.fromEntries(
    clients.map((c) => [
      c.log.label,
      { ...JSON.parse(JSON.stringify(c.log)), frames: JSON.parse(JSON.stringify(c.frames.items)) },
    ]),
  );

scenario(
  'cluster_presence',
  async () => {
    const ada = await join('ada', 0, ADA);
    await membersOn(1, ['1']);
    const bob = await join('bob', 1, BOB);
    await membersOn(2, ['1', '2']);
    const cy = await join('cy', 2, CY);
    await waitUntil(
      'joining events',
      () => ada.log.joining.length === 2 && bob.log.joining.length === 1,
    );
    // Bob's second connection, on another node than his first: nobody sees him join again.
    const bob2 = await join('bob2', 2, BOB);
    const all = [ada, bob, cy, bob2];
    await marker(1, 2, all); // through node 2: after bob2's join everywhere
    const joined = snapshot(all);
    const joinedViews = await views();

    // Bob's connection on node 2 leaves: Bob is still on node 1, so nobody sees `leaving`.
    bob2.echo.disconnect();
    await connectionsOn(2, 3);
    await marker(2, 2, [ada, bob, cy]);
    const afterBob2 = snapshot([ada, bob, cy]);
    const afterBob2Views = await views();

    // Bob's last connection (node 1) leaves, then Cy (node 2).
    bob.echo.disconnect();
    await waitUntil(
      'ada and cy see bob leave',
      () => ada.log.leaving.length === 1 && cy.log.leaving.length === 1,
    );
    cy.echo.disconnect();
    await waitUntil('ada sees cy leave', () => ada.log.leaving.length === 2);
    for (const node of [0, 1, 2]) await connectionsOn(node, 1);
    await marker(3, 0, [ada]);
    const alone = await views();

    ada.echo.disconnect();
    for (const node of [0, 1, 2]) await connectionsOn(node, 0);
    const vacated = await views();

    return {
      joined,
      joined_views: joinedViews,
      after_bob2_left: afterBob2,
      after_bob2_views: afterBob2Views,
      final: snapshot([ada, bob, cy]),
      alone,
      vacated,
    };
  },
  30000,
);
