// sendToUser right after sign-in: the app calls the Node SDK (one kept-alive HTTP connection)
// the moment pusher-js reports `pusher:signin_success`, racing pusher-js's own subscribe to
// #server-to-user-{id}. Every event must arrive, once. OVERTONE_SEND_AT: node index of the SDK.
import http from 'node:http';
import { connected, env, pusherClient, scenario, sdkAt, sdkUserAuthentication, sleep, waitUntil } from './lib.mjs';

const ROUNDS = 20;
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const sdk = sdkAt(Number(process.env.OVERTONE_SEND_AT || 0), { agent });

scenario('signin_race', async () => {
  const rounds = [];
  for (let i = 0; i < ROUNDS; i += 1) {
    const user = { id: `race-${i}` };
    const client = pusherClient({ userAuthentication: sdkUserAuthentication(sdk, user) });
    const received = [];
    client.user.bind('ev', (data) => received.push(data.i));
    let sent = null;
    client.connection.bind('message', (event) => {
      if (event.event === 'pusher:signin_success') {
        sent = sdk.sendToUser(user.id, 'ev', { i }).then((answer) => answer.status);
      }
    });
    await connected(client);
    client.signin();
    await waitUntil(`round ${i}: sendToUser answered`, () => sent !== null);
    const status = await sent;
    await waitUntil(`round ${i}: subscribed`, () => client.user.serverToUserChannel?.subscribed === true);
    await sleep(150); // time for a late or duplicate delivery to show
    rounds.push({ status, received: [...received] });
    client.disconnect();
  }
  return { rounds, app: env.appId };
}, 60000);
