// Three nodes behind an nginx that spreads every request round-robin (OVERTONE_PORT is that
// nginx). pusher-js A uses xhr_streaming and B xhr_polling: both subscribe to a private
// channel, exchange client events, and receive 100 events published through the nginx (so
// through every node in turn): each must get all of them once, in order.
import {
  check,
  connected,
  fallbackClient,
  record,
  scenario,
  sdkChannelAuthorization,
  serverSdk,
  subscribed,
  waitUntil,
} from './lib.mjs';

const CHANNEL = 'private-ward';
const sdk = serverSdk();

scenario(
  'fallback_cluster',
  async () => {
    const auth = { channelAuthorization: sdkChannelAuthorization(sdk) };
    const a = fallbackClient('xhr_streaming', auth);
    const b = fallbackClient('xhr_polling', auth);
    await connected(a, 15000);
    await connected(b, 15000);
    const transports = [a, b].map((p) => p.connection.connection?.transport?.name);
    const aChannel = await subscribed(a, CHANNEL, 15000);
    const bChannel = await subscribed(b, CHANNEL, 15000);
    const aLog = record('a', aChannel);
    const bLog = record('b', bChannel);
    aChannel.trigger('client-note', { from: 'a' });
    await bLog.waitEvent('client-note', 15000);
    bChannel.trigger('client-note', { from: 'b' });
    await aLog.waitEvent('client-note', 15000);
    for (let n = 1; n <= 100; n += 1) {
      await sdk.trigger(CHANNEL, 'tick', { n });
    }
    const ticks = (log) => log.items.filter((item) => item.event === 'tick').map((item) => item.data.n);
    await waitUntil('100 ticks on both', () => ticks(aLog).length >= 100 && ticks(bLog).length >= 100, 30000);
    await new Promise((resolve) => setTimeout(resolve, 500)); // a duplicate would show here
    check(a.connection.state === 'connected' && b.connection.state === 'connected', 'still connected');
    return {
      transports,
      a_ticks: ticks(aLog),
      b_ticks: ticks(bLog),
      a_notes: aLog.items.filter((i) => i.event === 'client-note').map((i) => i.data.from),
      b_notes: bLog.items.filter((i) => i.event === 'client-note').map((i) => i.data.from),
      sockets: [a.connection.socket_id, b.connection.socket_id],
    };
  },
  90000,
);
