// Cluster scenario: channel lists. One pusher-js client on node 0 subscribes to a public and
// a presence channel; nobody is subscribed on nodes 1 and 2. Every node's HTTP API (Node SDK)
// must list both channels, as one server would.
import {
  apiGet,
  atNode,
  connected,
  poll,
  ports,
  pusherClient,
  scenario,
  sdkAt,
  sdkChannelAuthorization,
  subscribed,
} from './lib.mjs';

const PUBLIC = 'solo';
const PRESENCE = 'presence-solo';

scenario('cluster_channels', async () => {
  const sdks = ports.map((_, node) => sdkAt(node));
  const client = pusherClient({
    ...atNode(0),
    channelAuthorization: sdkChannelAuthorization(sdks[0], () => ({ user_id: 'u1' })),
  });
  await connected(client);
  await subscribed(client, PUBLIC);
  await subscribed(client, PRESENCE);

  const views = [];
  for (const sdk of sdks) {
    // Replicated once the single-channel view of this node counts the subscriber.
    const single = await poll('the presence subscriber to replicate', async () => {
      const info = await apiGet(sdk, `/channels/${PRESENCE}`, {
        info: 'subscription_count,user_count',
      });
      return info.user_count === 1 && info;
    });
    views.push({
      single,
      all: await apiGet(sdk, '/channels', { info: 'subscription_count' }),
      presence: await apiGet(sdk, '/channels', {
        filter_by_prefix: 'presence-',
        info: 'user_count',
      }),
    });
  }
  return { views };
});
