// Scenario 8: graceful shutdown. The Python side SIGTERMs the server at stage "connected";
// pusher-js must see error 4200 and try to reconnect at once (state `connecting`), then go
// `unavailable` since nothing answers; a raw client sees the pusher:error frame and close code.
import {
  connected,
  errorCode,
  pusherClient,
  rawClient,
  scenario,
  stage,
  subscribed,
  waitUntil,
} from './lib.mjs';

scenario('shutdown', async () => {
  const client = pusherClient({ unavailableTimeout: 1500 });
  const states = [];
  const errors = [];
  client.connection.bind('state_change', ({ current }) => states.push(current));
  client.connection.bind('error', (error) => errors.push(errorCode(error)));
  await connected(client);
  await subscribed(client, 'news');

  const raw = await rawClient();
  raw.send('pusher:subscribe', { channel: 'news' });
  await raw.inbox.waitEvent('pusher_internal:subscription_succeeded');

  await stage('connected', { socket_id: client.connection.socket_id });
  const closeCode = await raw.closed;
  await waitUntil('pusher-js to give up for now', () => states.includes('unavailable'), 8000);

  return {
    states,
    errors,
    raw_close_code: closeCode,
    raw_errors: raw.inbox.items.filter((item) => item.event === 'pusher:error').map((i) => i.data),
  };
});
