// Scenario 3: presence through laravel-echo (`reverb` broadcaster): here / joining / leaving,
// a user with two connections counted once, and the HTTP API's presence views (Node SDK here,
// PyPI SDK at the stages "members" and "alone").
import {
  check,
  echoClient,
  scenario,
  sdkChannelAuthorization,
  serverSdk,
  poll,
  stage,
  waitUntil,
} from './lib.mjs';

const ROOM = 'room';
const CHANNEL = `presence-${ROOM}`;
const ADA = { user_id: 1, user_info: { id: 1, name: 'Ada' } };
const BOB = { user_id: 2, user_info: { id: 2, name: 'Bob' } };
const CY = { user_id: 3, user_info: { id: 3, name: 'Cy' } };

const sdk = serverSdk();

async function get(path, params) {
  const response = await sdk.get({ path, params });
  return response.json();
}

/** An Echo client joined to the room as `user`, logging what Echo reports. */
async function join(label, user) {
  const echo = echoClient({
    channelAuthorization: sdkChannelAuthorization(sdk, () => user),
  });
  const log = { label, here: null, joining: [], leaving: [], markers: [], errors: [] };
  echo
    .join(ROOM)
    .here((members) => (log.here = members))
    .joining((member) => log.joining.push(member))
    .leaving((member) => log.leaving.push(member))
    .listen('.marker', (data) => log.markers.push(data.n))
    .error((error) => log.errors.push(error));
  await waitUntil(`${label} here()`, () => log.here || log.errors.length);
  check(log.errors.length === 0, `${label} could not join`, log.errors);
  return { echo, log };
}

/** Trigger a marker and wait until every given client has it (orders earlier events). */
async function marker(n, clients) {
  await sdk.trigger(CHANNEL, 'marker', { n });
  await waitUntil(`marker ${n}`, () => clients.every((c) => c.log.markers.includes(n)));
}

async function connectionsBecome(n) {
  await poll(`the server to count ${n} connections`, async () => (await get('/connections')).connections === n);
}

const snapshot = (clients) =>
  Object.fromEntries(clients.map((c) => [c.log.label, JSON.parse(JSON.stringify(c.log))]));

scenario('presence', async () => {
  const ada = await join('ada', ADA);
  const bob = await join('bob', BOB);
  const cy = await join('cy', CY);
  await waitUntil('joining events', () => ada.log.joining.length === 2 && bob.log.joining.length === 1);
  // Bob's second connection: no member_added for anybody.
  const bob2 = await join('bob2', BOB);
  const all = [ada, bob, cy, bob2];
  await marker(1, all);
  const joined = snapshot(all);

  const users = await get(`/channels/${CHANNEL}/users`);
  const channels = await get('/channels', { filter_by_prefix: 'presence-', info: 'user_count' });
  const channel = await get(`/channels/${CHANNEL}`, { info: 'user_count' });
  await stage('members', { channel: CHANNEL });

  // Bob's second connection leaves: Bob is still there, so nobody sees `leaving`.
  bob2.echo.disconnect();
  await connectionsBecome(3);
  await marker(2, [ada, bob, cy]);
  const afterBob2 = snapshot([ada, bob, cy]);

  // Bob's last connection leaves, then Cy.
  bob.echo.disconnect();
  await waitUntil('ada and cy see bob leave', () => ada.log.leaving.length === 1 && cy.log.leaving.length === 1);
  cy.echo.disconnect();
  await waitUntil('ada sees cy leave', () => ada.log.leaving.length === 2);
  await connectionsBecome(1);
  const alone = {
    users: await get(`/channels/${CHANNEL}/users`),
    channels: await get('/channels', { filter_by_prefix: 'presence-', info: 'user_count' }),
  };
  await stage('alone', { channel: CHANNEL });

  ada.echo.disconnect();
  await connectionsBecome(0);
  const vacated = await get('/channels', { filter_by_prefix: 'presence-', info: 'user_count' });

  return {
    joined,
    after_bob2_left: afterBob2,
    final: snapshot([ada, bob, cy]),
    rest: { users, channels, channel, alone, vacated },
  };
}, 30000);
