// Cluster scenario 1: three nodes (OVERTONE_PORTS) on one Redis. Events triggered through the
// Node SDK on node 0 reach pusher-js subscribers on nodes 0, 1 and 2 exactly once; `socket_id`
// excludes a client living on node 2 only. The HTTP API of every node counts every subscriber.
import {
  apiGet,
  atNode,
  check,
  connected,
  poll,
  pusherClient,
  record,
  scenario,
  sdkAt,
  sleep,
  subscribed,
} from './lib.mjs';

const CHANNEL = 'news';
// No event may follow within this window once the marker has arrived (duplicates would).
const WINDOW = 300;

scenario('cluster_public', async () => {
  const sdks = [0, 1, 2].map((node) => sdkAt(node));
  const clients = {
    a: pusherClient(atNode(0)),
    b: pusherClient(atNode(1)),
    c: pusherClient(atNode(2)),
    excluded: pusherClient(atNode(2)),
  };
  const names = Object.keys(clients);
  const sockets = Object.fromEntries(
    await Promise.all(names.map(async (name) => [name, await connected(clients[name])])),
  );
  const inboxes = {};
  for (const name of names) {
    inboxes[name] = record(name, await subscribed(clients[name], CHANNEL));
  }

  // Each node answers for the whole cluster once the subscriptions have replicated.
  const counts = [];
  for (const sdk of sdks) {
    counts.push(
      await poll(`4 subscribers of ${CHANNEL}`, async () => {
        const info = await apiGet(sdk, `/channels/${CHANNEL}`, { info: 'subscription_count' });
        return info.subscription_count === 4 && info;
      }),
    );
  }

  const triggered = await sdks[0].trigger(CHANNEL, 'greeting', { text: 'hello', n: 1 });
  check(triggered.status === 200, 'trigger status', triggered.status);
  await sdks[0].trigger(CHANNEL, 'not-for-c2', { n: 2 }, { socket_id: sockets.excluded });
  await sdks[0].trigger(CHANNEL, 'marker', { n: 3 });
  // Events from one node reach each node in order: once the marker is there, so is the rest.
  await Promise.all(names.map((name) => inboxes[name].waitEvent('marker')));
  await sleep(WINDOW);

  return {
    sockets,
    counts,
    events: Object.fromEntries(names.map((name) => [name, inboxes[name].items])),
    states: Object.fromEntries(names.map((name) => [name, clients[name].connection.state])),
  };
});
