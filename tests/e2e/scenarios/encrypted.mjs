// Scenario 4: an end-to-end encrypted channel. The Node SDK (with a master key) encrypts,
// pusher-js decrypts with the shared_secret from authorizeChannel, and a raw `ws` subscriber
// shows that the server only ever relays ciphertext. Client events are refused there. At stage
// "python" the PyPI SDK, given the same master key, triggers `py-secret` with plaintext PY_SECRET.
import { randomBytes } from 'node:crypto';

import {
  check,
  connected,
  pusherClient,
  rawClient,
  record,
  scenario,
  sdkChannelAuthorization,
  serverSdk,
  stage,
  subscribed,
} from './lib.mjs';

const CHANNEL = 'private-encrypted-x';
const PLAINTEXT = 'the eagle lands at 0600';

scenario('encrypted', async () => {
  const masterKey = randomBytes(32).toString('base64');
  const sdk = serverSdk({ encryptionMasterKeyBase64: masterKey });
  const client = pusherClient({ channelAuthorization: sdkChannelAuthorization(sdk) });
  await connected(client);
  const inbox = record('pusher-js', await subscribed(client, CHANNEL));

  const raw = await rawClient();
  const rawAuth = sdk.authorizeChannel(raw.socketId, CHANNEL);
  check(typeof rawAuth.shared_secret === 'string', 'authorizeChannel gives a shared_secret', rawAuth);
  raw.send('pusher:subscribe', { channel: CHANNEL, auth: rawAuth.auth });
  await raw.inbox.waitEvent('pusher_internal:subscription_succeeded');

  await sdk.trigger(CHANNEL, 'secret', { text: PLAINTEXT, n: 7 });
  const decrypted = await inbox.waitEvent('secret');
  const relayed = await raw.inbox.waitEvent('secret');

  // A client event on an encrypted channel must not be relayed. The pong proves the server
  // has handled it before the marker is triggered.
  raw.send('client-sneaky', { text: 'plaintext from a client' }, CHANNEL);
  raw.send('pusher:ping', {});
  await raw.inbox.waitEvent('pusher:pong');
  await sdk.trigger(CHANNEL, 'marker', { n: 1 });
  await inbox.waitEvent('marker');

  // The PyPI SDK, given the same master key, encrypts for pusher-js too.
  await stage('python', { channel: CHANNEL, master_key: masterKey });
  const fromPython = await inbox.waitEvent('py-secret');

  return {
    decrypted: decrypted.data,
    decrypted_from_python: fromPython.data,
    events: inbox.names(),
    relayed_data: relayed.data,
    raw_frames: raw.frames,
    raw_errors: raw.inbox.items.filter((item) => item.event === 'pusher:error'),
    plaintext: PLAINTEXT,
    state: client.connection.state,
  };
});
