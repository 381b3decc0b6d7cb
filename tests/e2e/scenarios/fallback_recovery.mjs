// Recovery over the HTTP fallback through a network cut: pusher-js (PUSHER_JS=7, else 8) with
// overtone's recovery add-on on FALLBACK_TRANSPORT only, reaching the server through a proxy
// that the Python side cuts (OVERTONE_HOST is the proxy's address). At stage "ready" the
// Python side publishes 1..20; at stage "cut" it cuts the network for 3 s while it publishes
// 21..180, then restores it. Every one of the 180 must arrive once, in order.
import PusherJS7 from 'pusher-js-7';

import { PusherJS, fallbackClient, scenario, stage, subscribed, waitUntil } from './lib.mjs';
import { OvertoneRecovery } from './recovery_lib.mjs';

const TRANSPORT = process.env.FALLBACK_TRANSPORT;
const Build = process.env.PUSHER_JS === '7' ? PusherJS7 : PusherJS;
const CHANNEL = 'fallback-recovery';

scenario(
  `fallback_recovery ${TRANSPORT} ${process.env.PUSHER_JS || '8'}`,
  async () => {
    const pusher = fallbackClient(TRANSPORT, {}, Build);
    const resyncs = [];
    const states = [];
    OvertoneRecovery.install(pusher, { onResync: (name) => resyncs.push(name) });
    pusher.connection.bind('state_change', ({ current }) => states.push(current));
    const received = [];
    const channel = pusher.subscribe(CHANNEL);
    channel.bind('tick', (data) => received.push(data.n));
    await subscribed(pusher, CHANNEL, 15000);
    const firstSocket = pusher.connection.socket_id;
    await stage('ready', { channel: CHANNEL });
    await waitUntil('20 ticks', () => received.length >= 20, 15000);
    await stage('cut', {}, 30000);
    try {
      await waitUntil('180 ticks', () => received.length >= 180, 40000);
    } catch (error) {
      const got = `${received.length} ticks, states ${JSON.stringify(states)}, resyncs ${resyncs}`;
      throw new Error(`${error.message}: ${got}, last ${received.slice(-3)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 500)); // a duplicate would show here
    return {
      received,
      resyncs,
      states,
      transport: pusher.connection.connection?.transport?.name,
      new_socket: pusher.connection.socket_id !== firstSocket,
    };
  },
  90000,
);
