// Scenario 5: user authentication (pusher-js signin with the Node SDK's authenticateUser),
// sendToUser, watchlist online/offline, terminateUserConnections, and a refused signin.
import {
  connected,
  errorCode,
  poll,
  pusherClient,
  scenario,
  sdkUserAuthentication,
  serverSdk,
  sleep,
  waitUntil,
} from './lib.mjs';

const sdk = serverSdk();

/** A pusher-js client signed in as `user`, logging what pusher-js reports. */
async function signedIn(label, user, signer = sdk) {
  const client = pusherClient({ userAuthentication: sdkUserAuthentication(signer, user) });
  const log = { label, states: [], errors: [], received: [], watchlist: [] };
  client.connection.bind('state_change', ({ current }) => log.states.push(current));
  client.connection.bind('error', (error) => log.errors.push(errorCode(error)));
  client.user.bind('ev', (data) => log.received.push(data));
  for (const name of ['online', 'offline']) {
    client.user.watchlist.bind(name, (event) => log.watchlist.push({ name, user_ids: event.user_ids }));
  }
  await connected(client);
  client.signin();
  return { client, log };
}

const ready = (c) => c.client.user.serverToUserChannel?.subscribed === true;
const copy = (value) => JSON.parse(JSON.stringify(value));

scenario('user', async () => {
  const bob = await signedIn('bob', { id: 'u2', watchlist: ['u1'] });
  await waitUntil('bob signed in', () => ready(bob));
  const ada = await signedIn('ada', { id: 'u1', user_info: { name: 'Ada' }, watchlist: ['u2', 'u3'] });
  const ada2 = await signedIn('ada2', { id: 'u1' });
  await waitUntil('ada signed in twice', () => ready(ada) && ready(ada2));
  const userData = ada.client.user.user_data;

  // Watchlist: Cy (u3) comes online, then goes offline.
  const cy = await signedIn('cy', { id: 'u3' });
  await waitUntil('cy signed in', () => ready(cy));
  await waitUntil('ada sees cy online', () => ada.log.watchlist.some((e) => e.user_ids.includes('u3')));
  cy.client.disconnect();
  await waitUntil('ada sees cy offline', () =>
    ada.log.watchlist.some((e) => e.name === 'offline' && e.user_ids.includes('u3')),
  );

  // Server to user: both of Ada's connections, not Bob's.
  const sent = await sdk.sendToUser('u1', 'ev', { msg: 'hello u1' });
  await waitUntil('ev on both ada connections', () => ada.log.received.length && ada2.log.received.length);
  await sdk.sendToUser('u2', 'ev', { msg: 'hello u2' });
  await waitUntil('ev on bob', () => bob.log.received.length);
  const beforeTermination = copy([ada.log, ada2.log, bob.log]);

  // Terminate: both of Ada's connections close with 4009 and stay closed; Bob sees u1 offline.
  const terminated = await sdk.terminateUserConnections('u1');
  await waitUntil('ada disconnected', () =>
    [ada, ada2].every((c) => c.client.connection.state === 'disconnected'),
  );
  await waitUntil('bob sees u1 offline', () =>
    bob.log.watchlist.some((e) => e.name === 'offline' && e.user_ids.includes('u1')),
  );
  await sleep(500); // 4009 means "don't reconnect": nothing should happen now.

  // A signin signed with the wrong secret is refused with 4009.
  const mallory = await signedIn('mallory', { id: 'u9' }, serverSdk({ secret: 'wrong-secret' }));
  await poll('mallory refused', async () => mallory.client.connection.state === 'disconnected');

  return {
    user_data: userData,
    send_status: sent.status,
    terminate_status: terminated.status,
    before_termination: beforeTermination,
    ada: ada.log,
    ada2: ada2.log,
    bob: bob.log,
    bob_state: bob.client.connection.state,
    cy: cy.log,
    mallory: mallory.log,
  };
});
