// Helpers of the recovery scenarios (recovery_*.mjs): the add-on, pusher-js 7, a TCP proxy
// that can cut the network, and a wire log of the WebSocket frames that cross it.
import net from 'node:net';
import { createRequire } from 'node:module';

import PusherJS7 from 'pusher-js-7';

import {
  apiGet,
  check,
  clientOptions,
  echoClient,
  env,
  onExit,
  pusherClient,
  sleep,
  waitUntil,
} from './lib.mjs';

export { PusherJS7 };

/** The add-on, loaded the CommonJS way (the file ships in the Python package). */
export const RECOVERY_JS = new URL('../../../src/overtone/static/recovery.js', import.meta.url);
export const OvertoneRecovery = createRequire(import.meta.url)(RECOVERY_JS.pathname);

/**
 * Decode the WebSocket text frames of one direction of a connection, after the HTTP upgrade.
 * Frames are small and unfragmented here; client frames are masked.
 */
class FrameReader {
  constructor(onText) {
    this.onText = onText;
    this.buffer = Buffer.alloc(0);
    this.upgraded = false;
  }

  push(chunk) {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    if (!this.upgraded) {
      const end = this.buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      this.buffer = this.buffer.subarray(end + 4);
      this.upgraded = true;
    }
    for (;;) {
      const b = this.buffer;
      if (b.length < 2) return;
      const opcode = b[0] & 0x0f;
      const masked = (b[1] & 0x80) !== 0;
      let length = b[1] & 0x7f;
      let at = 2;
      if (length === 126) {
        if (b.length < 4) return;
        length = b.readUInt16BE(2);
        at = 4;
      } else if (length === 127) {
        if (b.length < 10) return;
        length = Number(b.readBigUInt64BE(2));
        at = 10;
      }
      const maskAt = at;
      if (masked) at += 4;
      if (b.length < at + length) return;
      const payload = Buffer.from(b.subarray(at, at + length));
      if (masked) {
        for (let i = 0; i < payload.length; i += 1) payload[i] ^= b[maskAt + (i % 4)];
      }
      this.buffer = b.subarray(at + length);
      if (opcode === 1) this.onText(payload.toString('utf8'));
    }
  }
}

/**
 * A TCP proxy on 127.0.0.1 in front of overtone. `cut()` destroys every proxied connection
 * and refuses new ones (accepted, then reset) until `restore()`; `cut({hold: true})` holds
 * them instead (accepted, nothing forwarded either way, like a network dropping packets) and
 * `restore()` forwards them then. `wire` lists every text frame that crossed it:
 * `{dir: 'in'|'out', conn, frame}` ('in' = server to client). `retarget(port)` points later
 * connections at another server (a load balancer switching cluster nodes);
 * `targets[conn - 1]` is the port connection `conn` was forwarded to.
 */
export class CutProxy {
  constructor(targetPort, targetHost = '127.0.0.1') {
    this.targetPort = targetPort;
    this.targetHost = targetHost;
    this.down = false;
    this.holding = false;
    this.sockets = new Set();
    this.held = new Set();
    this.accepted = 0;
    this.refused = 0;
    this.heldCount = 0;
    this.targets = [];
    this.wire = [];
    this.server = net.createServer((client) => this.accept(client));
  }

  async start() {
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    onExit(() => this.close());
    return this;
  }

  get port() {
    return this.server.address().port;
  }

  accept(client) {
    if (this.down && this.holding) {
      this.hold(client);
      return;
    }
    if (this.down) {
      this.refused += 1;
      client.on('error', () => {});
      client.resetAndDestroy();
      return;
    }
    this.forward(client);
  }

  /** Keep a connection made while the network is down (and what it sent) for `restore()`. */
  hold(client) {
    this.heldCount += 1;
    const entry = { client, early: [] };
    entry.onData = (chunk) => entry.early.push(chunk);
    this.held.add(entry);
    this.sockets.add(client);
    client.on('error', () => {});
    client.on('data', entry.onData);
    client.on('close', () => {
      this.held.delete(entry);
      this.sockets.delete(client);
    });
  }

  /** Connect `client` to the current target; `early` is data it sent before that. */
  forward(client, early = []) {
    this.accepted += 1;
    const conn = this.accepted;
    this.targets.push(this.targetPort);
    const upstream = net.connect(this.targetPort, this.targetHost);
    const pair = [client, upstream];
    const inbound = new FrameReader((text) => this.log('in', conn, text));
    const outbound = new FrameReader((text) => this.log('out', conn, text));
    for (const socket of pair) {
      this.sockets.add(socket);
      socket.setNoDelay(true);
      socket.on('error', () => {});
      socket.on('close', () => {
        this.sockets.delete(socket);
        for (const other of pair) other.destroy();
      });
    }
    const send = (chunk) => {
      outbound.push(chunk);
      upstream.write(chunk);
    };
    early.forEach(send);
    client.on('data', send);
    upstream.on('data', (chunk) => {
      inbound.push(chunk);
      client.write(chunk);
    });
  }

  log(dir, conn, text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      frame = { unparsed: text };
    }
    this.wire.push({ dir, conn, frame });
  }

  /**
   * The network goes away: every connection is reset, new ones are refused (or held, with
   * `hold: true`, until `restore()`).
   */
  cut({ hold = false } = {}) {
    this.down = true;
    this.holding = hold;
    for (const socket of this.sockets) socket.resetAndDestroy();
  }

  /** The network is back: connections held meanwhile reach the (current) target now. */
  restore() {
    this.down = false;
    const held = [...this.held];
    this.held.clear();
    for (const { client, early, onData } of held) {
      client.off('data', onData);
      if (!client.destroyed) this.forward(client, early);
    }
  }

  /** Forward the connections accepted from now on to `port` (open ones stay where they are). */
  retarget(port, host = this.targetHost) {
    this.targetPort = port;
    this.targetHost = host;
  }

  close() {
    this.cut();
    this.server.close();
  }

  /** The frames of direction `dir` whose event is `event` (and channel, when given). */
  frames(dir, event, channel) {
    return this.wire
      .filter((item) => item.dir === dir && item.frame.event === event)
      .filter((item) => channel === undefined || item.frame.channel === channel);
  }

  /** The `pusher:subscribe` data the clients sent for `channel`, in order. */
  subscribes(channel) {
    return this.frames('out', 'pusher:subscribe')
      .map((item) => item.frame.data)
      .filter((data) => data.channel === channel);
  }

  /** The `subscription_succeeded` frames overtone sent for `channel`, in order. */
  successes(channel) {
    return this.frames('in', 'pusher_internal:subscription_succeeded', channel).map(
      (item) => item.frame,
    );
  }
}

/** Client options that connect pusher-js (or Echo) through `proxy`. */
export const viaProxy = (proxy, extra = {}) => clientOptions({ wsPort: proxy.port, ...extra });

/** Integers `from..to`, inclusive. */
export const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/**
 * Trigger `event` with data `{n}` for every n of `numbers` on `channel`, one request at a time,
 * `gap` ms apart (scaled).
 */
export async function publish(sdk, channel, event, numbers, gap = 0) {
  for (const n of numbers) {
    const answer = await sdk.trigger(channel, event, { n });
    check(answer.status === 200, `trigger ${n} answered ${answer.status}`);
    if (gap) await sleep(gap);
  }
}

/** A channel's stream position read through the signed HTTP API (`info=position`). */
export async function httpPosition(sdk, channel) {
  const answer = await apiGet(sdk, `/channels/${encodeURIComponent(channel)}`, {
    info: 'position',
  });
  check(answer.position && typeof answer.position.epoch === 'string', 'no position', answer);
  return answer.position;
}

/** Wait until a pusher-js client's connection state is `state`. */
export function reachState(client, state, timeout = 5000) {
  return waitUntil(`connection state ${state} (now ${client.connection.state})`, () =>
    client.connection.state === state,
  timeout);
}

/**
 * Every connection state a pusher-js client goes through, in order (to show that a cut was
 * noticed and followed by a reconnect).
 */
export function stateLog(client) {
  const states = [client.connection.state];
  client.connection.bind('state_change', ({ current }) => states.push(current));
  return states;
}

/**
 * Cut `proxies` (one or a list) for `seconds` (at least; a fixed network outage, not a
 * timeout) while `during()` runs, then restore them; return `during()`'s result and how long
 * the cut lasted. `options` go to `cut()` (`{hold: true}`).
 */
export async function cutWhile(proxies, seconds, during, options = {}) {
  const all = Array.isArray(proxies) ? proxies : [proxies];
  for (const proxy of all) proxy.cut(options);
  const started = Date.now();
  const result = await during();
  const left = seconds * 1000 - (Date.now() - started);
  if (left > 0) await new Promise((resolve) => setTimeout(resolve, left));
  for (const proxy of all) proxy.restore();
  return { result, cut_ms: Date.now() - started };
}

/**
 * A client of `kind` ('pusher-js-8', 'pusher-js-7' or 'laravel-echo') connected through
 * `proxy`, with the add-on installed (`options` go to `install`, `onResync` is recorded;
 * `options.startFrom` is a position given to `handle.startFrom` before subscribing),
 * subscribed to `channel` and listening to `event`. `timeline` lists, in arrival order, the
 * `n` of every event, `'onResync'` for each onResync call and `'overtone:resync'` for each
 * resync event the channel emitted (Echo: `.listen('.overtone:resync')`).
 */
export function recoveringClient(kind, proxy, channel, event, options = {}) {
  const timeline = [];
  const resyncs = [];
  const { startFrom, ...installOptions } = options;
  const install = (pusher) => {
    const installed = OvertoneRecovery.install(pusher, {
      ...installOptions,
      onResync: (name, position) => {
        timeline.push('onResync');
        resyncs.push({ channel: name, position });
      },
    });
    if (startFrom) installed.startFrom(channel, startFrom);
    return installed;
  };
  let pusher;
  let handle;
  if (kind === 'laravel-echo') {
    const echo = echoClient({ wsPort: proxy.port });
    pusher = echo.connector.pusher;
    handle = install(pusher);
    echo
      .channel(channel)
      .listen(`.${event}`, (data) => timeline.push(data.n))
      .listen('.overtone:resync', () => timeline.push('overtone:resync'));
  } else {
    if (kind === 'pusher-js-8') {
      pusher = pusherClient(viaProxy(proxy));
    } else if (kind === 'pusher-js-7') {
      pusher = new PusherJS7(env.key, viaProxy(proxy));
      onExit(() => pusher.disconnect());
    } else {
      throw new Error(`unknown client kind ${kind}`);
    }
    handle = install(pusher);
    const subscription = pusher.subscribe(channel);
    subscription.bind(event, (data) => timeline.push(data.n));
    subscription.bind('overtone:resync', () => timeline.push('overtone:resync'));
  }
  const events = () => timeline.filter((item) => typeof item === 'number');
  return {
    kind,
    pusher,
    handle,
    timeline,
    resyncs,
    events,
    states: stateLog(pusher),
    subscribed: (timeout = 5000) =>
      waitUntil(`${kind} subscribed to ${channel}`, () => pusher.channel(channel)?.subscribed, timeout),
    received: (count, timeout = 5000) =>
      waitUntil(
        `${count} events on ${kind} (got ${events().length})`,
        () => events().length >= count,
        timeout,
      ),
  };
}
