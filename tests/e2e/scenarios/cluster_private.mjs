// Cluster scenario 2: client events on a private channel cross nodes. A (node 0) sends, B
// (node 1) and C (node 2) receive; B and C answer in turn. Nobody gets its own event back.
import {
  atNode,
  check,
  connected,
  pusherClient,
  record,
  scenario,
  sdkAt,
  sdkChannelAuthorization,
  sleep,
  subscribed,
} from './lib.mjs';

const CHAT = 'private-chat';
const WINDOW = 300;

scenario('cluster_private', async () => {
  const sdk = sdkAt(0);
  const auth = { channelAuthorization: sdkChannelAuthorization(sdk) };
  const clients = {
    a: pusherClient({ ...auth, ...atNode(0) }),
    b: pusherClient({ ...auth, ...atNode(1) }),
    c: pusherClient({ ...auth, ...atNode(2) }),
  };
  const names = Object.keys(clients);
  await Promise.all(names.map((name) => connected(clients[name])));
  const channels = {};
  const inboxes = {};
  for (const name of names) {
    channels[name] = await subscribed(clients[name], CHAT);
    inboxes[name] = record(name, channels[name]);
  }
  const { a, b, c } = inboxes;

  // A -> B, C. Then B answers once both have A's event, then C once A and C have B's, so
  // every inbox has a fixed order and a sender's echo would have come before the reply.
  check(channels.a.trigger('client-typing', { from: 'a' }) === true, 'A trigger');
  await Promise.all([b.waitEvent('client-typing'), c.waitEvent('client-typing')]);
  check(channels.b.trigger('client-from-b', { from: 'b' }) === true, 'B trigger');
  await Promise.all([a.waitEvent('client-from-b'), c.waitEvent('client-from-b')]);
  check(channels.c.trigger('client-from-c', 'plain text from c') === true, 'C trigger');
  await Promise.all([a.waitEvent('client-from-c'), b.waitEvent('client-from-c')]);

  // A server event through node 2 closes the sequence; then a window for late duplicates.
  await sdkAt(2).trigger(CHAT, 'server-marker', { n: 1 });
  await Promise.all(names.map((name) => inboxes[name].waitEvent('server-marker')));
  await sleep(WINDOW);

  return {
    events: Object.fromEntries(names.map((name) => [name, inboxes[name].items])),
    states: Object.fromEntries(names.map((name) => [name, clients[name].connection.state])),
  };
});
