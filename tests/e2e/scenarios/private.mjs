// Scenario 2: private channels authorized with the Node SDK's authorizeChannel; client events
// between two pusher-js clients; a wrong signature gives subscription_error and the connection
// stays open and usable.
import {
  check,
  connected,
  env,
  pusherClient,
  record,
  scenario,
  sdkChannelAuthorization,
  serverSdk,
  subscribed,
  waitFor,
} from './lib.mjs';

const CHAT = 'private-chat';
const SECRET = 'private-secret';

scenario('private', async () => {
  const sdk = serverSdk();
  const auth = { channelAuthorization: sdkChannelAuthorization(sdk) };
  const a = pusherClient(auth);
  const b = pusherClient(auth);
  // C signs private-secret with a wrong secret, everything else correctly.
  const wrong = serverSdk({ secret: 'not-the-secret' });
  const c = pusherClient({
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, callback) =>
        callback(null, (channelName === SECRET ? wrong : sdk).authorizeChannel(socketId, channelName)),
    },
  });
  const [, , socketC] = await Promise.all([connected(a), connected(b), connected(c)]);

  const chatA = await subscribed(a, CHAT);
  const chatB = await subscribed(b, CHAT);
  const inboxA = record('client A', chatA);
  const inboxB = record('client B', chatB);

  // A -> B; then B answers once it has A's event, so A would have its own echo before the reply.
  check(chatA.trigger('client-typing', { from: 'a', text: 'hi b' }) === true, 'A trigger');
  await inboxB.waitEvent('client-typing');
  check(chatB.trigger('client-reply', { from: 'b', text: 'hi a' }) === true, 'B trigger');
  await inboxA.waitEvent('client-reply');

  // The wrong signature: pusher:subscription_error on that channel only.
  const bad = c.subscribe(SECRET);
  const badInbox = record('client C on private-secret', bad);
  const subscriptionError = await waitFor('subscription_error', (resolve) => {
    bad.bind('pusher:subscription_error', resolve);
    bad.bind('pusher:subscription_succeeded', () => resolve({ unexpected: 'subscription_succeeded' }));
  });
  const stateAfterError = c.connection.state;
  // Still usable: C joins the chat with a good signature and gets server events there,
  // while an event triggered on private-secret never reaches it.
  const chatC = await subscribed(c, CHAT);
  const inboxC = record('client C', chatC);
  await sdk.trigger(SECRET, 'leak', { text: 'must not arrive' });
  await sdk.trigger(CHAT, 'server-marker', { text: 'after the error' });
  await inboxC.waitEvent('server-marker');
  await Promise.all([inboxA.waitEvent('server-marker'), inboxB.waitEvent('server-marker')]);

  return {
    a_events: inboxA.items,
    b_events: inboxB.items,
    c_events: inboxC.items,
    c_secret_events: badInbox.items,
    c_secret_subscribed: bad.subscribed,
    subscription_error: subscriptionError,
    state_after_error: stateAfterError,
    c_socket_before: socketC,
    c_socket_after: c.connection.socket_id,
    c_state: c.connection.state,
    key: env.key,
  };
});
