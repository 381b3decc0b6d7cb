// The add-on's handle with pusher-js 8, reconnecting by `disconnect()` + `connect()` (pusher-js
// resubscribes every channel): the position follows the events, `unsubscribe` forgets it,
// a resubscribe recovers from it, `uninstall` puts pusher-js back as it was. Also: the file
// loads as an ES module import of CommonJS (named export) and refuses misuse. A presence
// channel (signed subscribe with channel_data) recovers the same way.
import { install as namedInstall } from '../../../src/overtone/static/recovery.js';

import {
  PusherJS,
  check,
  env,
  scenario,
  sdkChannelAuthorization,
  serverSdk,
  waitUntil,
} from './lib.mjs';
import { CutProxy, OvertoneRecovery, publish, reachState, viaProxy } from './recovery_lib.mjs';

const CHANNEL = 'recovery-api';
const PRESENCE = 'presence-recovery-api';
const EVENT = 'tick';

function thrown(fn) {
  try {
    fn();
  } catch (error) {
    return `${error.name}: ${error.message}`;
  }
  return null;
}

scenario('recovery_api', async () => {
  const sdk = serverSdk();
  const proxy = await new CutProxy(env.port).start();
  const member = () => ({ user_id: '42', user_info: { name: 'forty-two' } });
  const pusher = new PusherJS(
    env.key,
    viaProxy(proxy, { channelAuthorization: sdkChannelAuthorization(sdk, member) }),
  );
  const received = [];
  const presenceReceived = [];
  const handle = OvertoneRecovery.install(pusher);
  const misuse = {
    named_export_is_install: namedInstall === OvertoneRecovery.install,
    twice: thrown(() => OvertoneRecovery.install(pusher)),
    not_pusher: thrown(() => OvertoneRecovery.install({})),
    bad_position: thrown(() => handle.startFrom(CHANNEL, { epoch: 'e' })),
  };
  const positions = {};
  const subscribe = async (label) => {
    const channel = pusher.subscribe(CHANNEL);
    channel.bind(EVENT, (data) => received.push(data.n));
    await waitUntil(`subscription ${label}`, () => pusher.channel(CHANNEL)?.subscribed);
  };
  const reconnect = async (label) => {
    const before = proxy.successes(CHANNEL).length;
    pusher.disconnect();
    await reachState(pusher, 'disconnected');
    pusher.connect();
    await reachState(pusher, 'connected');
    await waitUntil(`resubscription ${label}`, () => proxy.successes(CHANNEL).length > before);
  };
  try {
    await subscribe('first');
    pusher.subscribe(PRESENCE).bind(EVENT, (data) => presenceReceived.push(data.n));
    await waitUntil('presence subscription', () => pusher.channel(PRESENCE)?.subscribed);
    await publish(sdk, CHANNEL, EVENT, [1, 2]);
    await publish(sdk, PRESENCE, EVENT, [1]);
    await waitUntil('events 1, 2', () => received.length === 2 && presenceReceived.length === 1);
    positions.after_two = handle.position(CHANNEL);

    pusher.unsubscribe(CHANNEL);
    positions.after_unsubscribe = handle.position(CHANNEL);
    await subscribe('after unsubscribe');
    await publish(sdk, CHANNEL, EVENT, [3]);
    await waitUntil('event 3', () => received.includes(3));
    positions.after_three = handle.position(CHANNEL);

    const presenceBefore = proxy.successes(PRESENCE).length;
    await reconnect('with the add-on');
    await waitUntil('presence resubscribed', () => proxy.successes(PRESENCE).length > presenceBefore);
    await publish(sdk, PRESENCE, EVENT, [2]);
    await publish(sdk, CHANNEL, EVENT, [4]);
    await waitUntil('event 4', () => received.includes(4) && presenceReceived.includes(2));
    positions.after_four = handle.position(CHANNEL);

    handle.uninstall();
    const restored = {
      send_event: !Object.prototype.hasOwnProperty.call(pusher.connection, 'send_event'),
      unsubscribe: !Object.prototype.hasOwnProperty.call(pusher, 'unsubscribe'),
      marker: pusher.__overtoneRecovery === undefined,
    };
    await reconnect('after uninstall');
    await publish(sdk, CHANNEL, EVENT, [5]);
    await waitUntil('event 5', () => received.includes(5));
    const reinstalled = OvertoneRecovery.install(pusher);
    check(reinstalled.position(CHANNEL) === null, 'a new install starts empty');

    return {
      misuse,
      positions,
      restored,
      received,
      presence_received: presenceReceived,
      presence_members: pusher.channel(PRESENCE).members.count,
      presence_subscribes: proxy.subscribes(PRESENCE),
      presence_successes: proxy
        .successes(PRESENCE)
        .map(({ position, recovered, data }) => ({ position, recovered, data })),
      subscribes: proxy.subscribes(CHANNEL),
      successes: proxy.successes(CHANNEL).map(({ position, recovered }) => ({ position, recovered })),
    };
  } finally {
    pusher.disconnect();
  }
});
