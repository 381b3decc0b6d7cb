// Authorized connections (OVERTONE_AUTHORIZED_CONNECTIONS=true, OVERTONE_AUTHORIZATION_TIMEOUT
// of AUTHORIZATION_TIMEOUT seconds): anonymous pusher-js clients on a public channel, over a
// WebSocket, xhr_streaming and xhr_polling, get 4009 and stay disconnected; a client that
// signs in, one on a private channel and two laravel-echo clients on a private channel stay
// connected past the deadline, and keep receiving events and whispers.
import {
  check,
  connected,
  echoClient,
  errorCode,
  fallbackClient,
  pusherClient,
  record,
  scenario,
  sdkChannelAuthorization,
  sdkUserAuthentication,
  serverSdk,
  sleep,
  subscribed,
  waitUntil,
} from './lib.mjs';

const TIMEOUT = Number(process.env.AUTHORIZATION_TIMEOUT) * 1000;
// After this long a closed connection that pusher-js meant to reopen would be open again.
const NO_RECONNECT = 1000;

const sdk = serverSdk();
const channelAuthorization = sdkChannelAuthorization(sdk);
const started = Date.now();

/** What pusher-js reports about a connection: state changes, error codes, when it closed. */
function watch(label, pusher) {
  const log = { label, states: [], errors: [], closed_after: null };
  pusher.connection.bind('state_change', ({ current }) => {
    log.states.push(current);
    if (current === 'disconnected' && log.closed_after === null) {
      log.closed_after = (Date.now() - started) / 1000;
    }
  });
  pusher.connection.bind('error', (error) => log.errors.push(errorCode(error)));
  return log;
}

/** An anonymous client (`transport`: an HTTP fallback, else a WebSocket) on a public channel. */
async function anonymous(label, transport) {
  const client = transport ? fallbackClient(transport) : pusherClient();
  const log = watch(label, client);
  await connected(client, 10000);
  log.transport = client.connection.connection?.transport?.name ?? null;
  await subscribed(client, 'news', 10000);
  return { client, log };
}

/** An Echo client on private-orders, recording `.shipped` events and `typing` whispers. */
function echoOnOrders(label) {
  const echo = echoClient({ channelAuthorization });
  const log = watch(label, echo.connector.pusher);
  const heard = { shipped: [], typing: [] };
  const channel = echo
    .private('orders')
    .listen('.shipped', (data) => heard.shipped.push(data))
    .listenForWhisper('typing', (data) => heard.typing.push(data));
  return { echo, channel, log, heard };
}

const socketOf = (pusher) => pusher.connection.socket_id;

scenario('authorized_connections', async () => {
  const anonymousOnes = await Promise.all([
    anonymous('ws'),
    anonymous('xhr_streaming', 'xhr_streaming'),
    anonymous('xhr_polling', 'xhr_polling'),
  ]);

  // Authorized: signed in; subscribed to a private channel; two Echo clients.
  const user = pusherClient({ userAuthentication: sdkUserAuthentication(sdk, { id: 'u1' }) });
  const userLog = watch('signed in', user);
  const notes = [];
  user.user.bind('note', (data) => notes.push(data));
  await connected(user);
  user.signin();
  const privateOne = pusherClient({ channelAuthorization });
  const privateLog = watch('private', privateOne);
  const orders = record('private orders', await subscribed(privateOne, 'private-orders'));
  const [ada, bob] = [echoOnOrders('echo ada'), echoOnOrders('echo bob')];
  await waitUntil('u1 signed in', () => user.user.serverToUserChannel?.subscribed === true);
  const echoes = [ada, bob].map((e) => e.echo.connector.pusher);
  await waitUntil('echo subscribed', () =>
    echoes.every((p) => p.channel('private-orders')?.subscribed),
  );
  const authorized = [user, privateOne, ...echoes];
  const sockets = authorized.map(socketOf);

  // Past the deadline the anonymous ones are gone, and stay gone.
  await waitUntil(
    'the anonymous connections to be closed',
    () => anonymousOnes.every(({ client }) => client.connection.state === 'disconnected'),
    TIMEOUT + 6000,
  );
  const wait = started + TIMEOUT + NO_RECONNECT - Date.now();
  await sleep(Math.max(wait, NO_RECONNECT));
  check(Date.now() - started > TIMEOUT + NO_RECONNECT, 'past the deadline');

  // The authorized ones are still there, on the same connections, and work.
  const survived = authorized.map((p) => p.connection.state === 'connected' && socketOf(p));
  ada.channel.whisper('typing', { from: 'ada' });
  await waitUntil('bob hears ada typing', () => bob.heard.typing.length === 1);
  bob.channel.whisper('typing', { from: 'bob' });
  await waitUntil('ada hears bob typing', () => ada.heard.typing.length === 1);
  await sdk.trigger('private-orders', 'shipped', { id: 7 });
  await waitUntil(
    'the order on every echo',
    () => ada.heard.shipped.length && bob.heard.shipped.length,
  );
  await orders.waitEvent('shipped');
  await sdk.sendToUser('u1', 'note', { text: 'still here' });
  await waitUntil('the note to u1', () => notes.length === 1);

  return {
    timeout: TIMEOUT / 1000,
    anonymous: anonymousOnes.map(({ client, log }) => ({ ...log, state: client.connection.state })),
    authorized: [userLog, privateLog, ada.log, bob.log],
    sockets,
    survived,
    heard: { ada: ada.heard, bob: bob.heard },
    orders: orders.names(),
    notes,
    seconds: (Date.now() - started) / 1000,
  };
});
