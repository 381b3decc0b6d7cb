// Deploy scenario: pusher-js over wss:// through a TLS reverse proxy (nginx) in front of
// overtone. OVERTONE_PORT is the proxy's TLS port; the test trusts its self-signed certificate
// with NODE_EXTRA_CA_CERTS. At stage "ready" the Python side triggers `proxied` on
// `deploy-news` through the proxied HTTP API with the PyPI SDK.
import { clientOptions, connected, env, pusherClient, record, scenario, stage, subscribed } from './lib.mjs';

const CHANNEL = 'deploy-news';

scenario('tls_proxy', async () => {
  const base = clientOptions();
  const client = pusherClient({ forceTLS: true, wssPort: env.port, wsPort: base.wsPort });
  const socketId = await connected(client);
  const inbox = record('proxied client', await subscribed(client, CHANNEL));
  await stage('ready', { socket_id: socketId, channel: CHANNEL });
  const event = await inbox.waitEvent('proxied');
  return {
    socket_id: socketId,
    event,
    state: client.connection.state,
    url: client.connection.connection?.transport?.socket?.url ?? null,
  };
});
