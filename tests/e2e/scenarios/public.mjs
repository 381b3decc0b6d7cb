// Scenario 1: public channel; deliveries from the Node SDK and (at stage "ready") the Python SDK;
// `socket_id` exclusion. Client A is always the excluded one, client B receives everything.
import { check, connected, pusherClient, record, scenario, serverSdk, stage, subscribed } from './lib.mjs';

const CHANNEL = 'news';

scenario('public', async () => {
  const sdk = serverSdk();
  const a = pusherClient();
  const b = pusherClient();
  const [socketA, socketB] = await Promise.all([connected(a), connected(b)]);
  check(/^\d+\.\d+$/.test(socketA), 'socket_id format', socketA);
  check(socketA !== socketB, 'socket ids must differ', [socketA, socketB]);

  const inboxA = record('client A', await subscribed(a, CHANNEL));
  const inboxB = record('client B', await subscribed(b, CHANNEL));

  const triggered = await sdk.trigger(CHANNEL, 'greeting', { text: 'hello from node', n: 1 });
  const triggerStatus = triggered.status;
  const triggerBody = await triggered.json();
  await Promise.all([inboxA.waitEvent('greeting'), inboxB.waitEvent('greeting')]);

  // Excluded for A; the marker (sent after, to everybody) proves A would have had it by now.
  await sdk.trigger(CHANNEL, 'node-excluded', { text: 'not for A' }, { socket_id: socketA });
  await sdk.trigger(CHANNEL, 'node-marker', { text: 'marker' });
  await Promise.all([inboxA.waitEvent('node-marker'), inboxB.waitEvent('node-marker')]);

  // The Python side triggers py-hello, py-excluded (socket_id = A) and py-marker.
  await stage('ready', { socket_a: socketA, socket_b: socketB, channel: CHANNEL });
  await Promise.all([inboxA.waitEvent('py-marker'), inboxB.waitEvent('py-marker')]);

  return {
    socket_a: socketA,
    socket_b: socketB,
    trigger_status: triggerStatus,
    trigger_body: triggerBody,
    a_events: inboxA.items,
    b_events: inboxB.items,
    a_state: a.connection.state,
    b_state: b.connection.state,
  };
});
