// pusher-js over one of its HTTP fallback transports (FALLBACK_TRANSPORT: xhr_streaming or
// xhr_polling; PUSHER_JS=7 for pusher-js 7, else 8) next to a WebSocket client: public,
// private, presence, cache and encrypted channels, client events both ways, sign-in with a
// watchlist, server-to-user events, terminate_connections, and a client that stops polling
// leaving presence after the server's session timeout.
import { randomBytes } from 'node:crypto';

import PusherJS7 from 'pusher-js-7';

import {
  PusherJS,
  check,
  connected,
  fallbackClient,
  pusherClient,
  record,
  scenario,
  sdkChannelAuthorization,
  sdkUserAuthentication,
  serverSdk,
  subscribed,
  waitUntil,
} from './lib.mjs';

const TRANSPORT = process.env.FALLBACK_TRANSPORT;
const Build = process.env.PUSHER_JS === '7' ? PusherJS7 : PusherJS;
const masterKey = randomBytes(32).toString('base64');
const sdk = serverSdk({ encryptionMasterKeyBase64: masterKey });

/** A client that may only use the fallback transport under test, signed in as `user`. */
function userClient(user) {
  const auth = {
    channelAuthorization: sdkChannelAuthorization(sdk, (_, name) =>
      name.startsWith('presence-') ? { user_id: user.id } : undefined,
    ),
    userAuthentication: sdkUserAuthentication(sdk, user),
  };
  return fallbackClient(TRANSPORT, auth, Build);
}

const transportOf = (client) => client.connection.connection?.transport?.name;

scenario(
  `fallback-${TRANSPORT}`,
  async () => {
    const ada = userClient({ id: 'ada', watchlist: ['bob'] });
    const adaSocket = await connected(ada, 10000);
    check(transportOf(ada) === TRANSPORT, 'ada is on the fallback transport', transportOf(ada));
    const bob = pusherClient({
      channelAuthorization: sdkChannelAuthorization(sdk, (_, name) =>
        name.startsWith('presence-') ? { user_id: 'bob' } : undefined,
      ),
      userAuthentication: sdkUserAuthentication(sdk, { id: 'bob' }),
    });
    await connected(bob);

    // Public channel and the server SDK.
    const adaNews = record('ada news', await subscribed(ada, 'news'));
    const bobNews = record('bob news', await subscribed(bob, 'news'));
    await sdk.trigger('news', 'greeting', { n: 1 });
    await sdk.trigger('news', 'not-for-ada', { n: 2 }, { socket_id: adaSocket });
    await sdk.trigger('news', 'marker', { n: 3 });
    await adaNews.waitEvent('marker', 10000);
    await bobNews.waitEvent('marker');

    // Private channel, client events both ways.
    const adaChat = await subscribed(ada, 'private-chat', 10000);
    const adaChatLog = record('ada chat', adaChat);
    const bobChatLog = record('bob chat', await subscribed(bob, 'private-chat'));
    adaChat.trigger('client-typing', { from: 'ada' });
    await bobChatLog.waitEvent('client-typing', 10000);
    bob.channel('private-chat').trigger('client-typing', { from: 'bob' });
    await adaChatLog.waitEvent('client-typing', 10000);

    // Presence, both ways.
    const adaRoom = await subscribed(ada, 'presence-room', 10000);
    const bobRoom = await subscribed(bob, 'presence-room');
    await waitUntil('two members for ada', () => adaRoom.members.count === 2, 10000);
    check(bobRoom.members.count === 2, 'bob sees two members', bobRoom.members.count);

    // Cache channel: the last event is sent on subscription.
    await sdk.trigger('cache-price', 'tick', { price: 42 });
    // Bound before subscribing: a poll brings the confirmation and the cached event together.
    const adaPrice = record('ada price', ada.subscribe('cache-price'));
    await subscribed(ada, 'cache-price', 10000);
    const cached = await adaPrice.waitEvent('tick', 10000);

    // Encrypted channel, decrypted by pusher-js.
    const adaSecret = record('ada secret', await subscribed(ada, 'private-encrypted-vault', 10000));
    await sdk.trigger('private-encrypted-vault', 'secret', { text: 'hush' });
    const secret = await adaSecret.waitEvent('secret', 10000);

    // Sign-in, the watchlist, and server-to-user events.
    const notes = [];
    const online = [];
    ada.user.bind('note', (data) => notes.push(data));
    ada.user.watchlist.bind('online', (event) => online.push(...event.user_ids));
    ada.signin();
    await waitUntil('ada signed in', () => ada.user.user_data?.id === 'ada', 10000);
    bob.signin();
    await waitUntil('bob online in ada watchlist', () => online.includes('bob'), 10000);
    await sdk.sendToUser('ada', 'note', { text: 'see you at 3' });
    await waitUntil('the note to ada', () => notes.length === 1, 10000);

    // A client that stops polling (pusher-js closes HTTP sessions without telling the
    // server) leaves presence once the server's session timeout has passed.
    const cy = userClient({ id: 'cy' });
    await connected(cy, 10000);
    await subscribed(cy, 'presence-room', 10000);
    await waitUntil('cy joined', () => bobRoom.members.count === 3, 10000);
    cy.disconnect();
    await waitUntil('cy left after the session timeout', () => bobRoom.members.count === 2, 15000);

    // terminate_connections closes ada's session like a WebSocket's.
    const states = [];
    ada.connection.bind('state_change', ({ current }) => states.push(current));
    await sdk.terminateUserConnections('ada');
    await waitUntil('ada out of presence', () => bobRoom.members.count === 1, 15000);
    await waitUntil('ada notices', () => states.length > 0, 15000);

    return {
      transport: transportOf(bob) === 'ws' ? TRANSPORT : 'unknown',
      ada_news: adaNews.names(),
      bob_news: bobNews.names(),
      client_events: [adaChatLog.names(), bobChatLog.names()],
      cached: cached.data,
      secret: secret.data,
      notes,
      online,
      states,
    };
  },
  60000,
);
