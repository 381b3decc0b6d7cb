// Shared helpers for the end-to-end scenarios.
//
// Every scenario reads the server address and app credentials from the environment
// (OVERTONE_HOST, OVERTONE_PORT, OVERTONE_APP_ID, OVERTONE_APP_KEY, OVERTONE_APP_SECRET),
// prints progress lines and one final JSON result on stdout, and exits non-zero on failure.
// A scenario that needs the Python side to act in the middle prints a `{"stage": ...}` line
// and waits (bounded) for a line on stdin before it goes on.
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

import PusherJS from 'pusher-js';
import PusherServer from 'pusher';
import Echo from 'laravel-echo';
import WebSocket from 'ws';

export { PusherJS, PusherServer, Echo, WebSocket };

export const E2E_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SCALE = Number(process.env.OVERTONE_TEST_TIMEOUT_SCALE || '1') || 1;

/** A timeout in milliseconds, scaled like the Python side's `scaled()`. */
export const ms = (n) => Math.round(n * SCALE);

function required(name) {
  const value = process.env[name];
  if (!value) {
    fail(`environment variable ${name} is not set`);
  }
  return value;
}

export const env = {
  host: required('OVERTONE_HOST'),
  port: Number(required('OVERTONE_PORT')),
  appId: required('OVERTONE_APP_ID'),
  key: required('OVERTONE_APP_KEY'),
  secret: required('OVERTONE_APP_SECRET'),
};

/**
 * The ports of the nodes of a cluster: OVERTONE_PORTS (comma-separated, node 0 first), else just
 * OVERTONE_PORT. Single-node scenarios never look at it.
 */
export const ports = (process.env.OVERTONE_PORTS || String(env.port))
  .split(',')
  .map((port) => Number(port.trim()));

/** The port of node `index` of OVERTONE_PORTS. */
export function nodePort(index) {
  const port = ports[index];
  if (!Number.isInteger(port) || port <= 0) {
    fail(`node ${index} is not in OVERTONE_PORTS (${JSON.stringify(ports)})`);
  }
  return port;
}

/** Client options that point pusher-js or laravel-echo at node `index`. */
export const atNode = (index) => ({ wsPort: nodePort(index) });

export const wsUrl = () =>
  `ws://${env.host}:${env.port}/app/${env.key}?protocol=7&client=js&version=8.4.0`;

function fail(message) {
  process.stdout.write(JSON.stringify({ ok: false, error: message }) + '\n');
  process.stderr.write(`scenario failed: ${message}\n`);
  process.exit(1);
}

export class AssertionError extends Error {}

/** Throw (failing the scenario) unless `condition` holds. */
export function check(condition, message, details) {
  if (!condition) {
    const extra = details === undefined ? '' : `: ${JSON.stringify(details)}`;
    throw new AssertionError(message + extra);
  }
}

export const sleep = (n) => new Promise((resolve) => setTimeout(resolve, ms(n)));

/** A promise settled by `register(resolve, reject)`, rejected after `timeout` ms. */
export function waitFor(label, register, timeout = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`timed out after ${ms(timeout)} ms waiting for ${label}`)),
      ms(timeout),
    );
    register(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/** Poll `predicate` every 20 ms until it is truthy. */
export function waitUntil(label, predicate, timeout = 5000) {
  return waitFor(
    label,
    (resolve) => {
      const tick = () => {
        const value = predicate();
        if (value) resolve(value);
        else setTimeout(tick, 20);
      };
      tick();
    },
    timeout,
  );
}

/** Await `probe()` every 50 ms until it returns a truthy value; return that value. */
export async function poll(label, probe, timeout = 5000) {
  const deadline = Date.now() + ms(timeout);
  let last;
  while (Date.now() < deadline) {
    last = await probe();
    if (last) return last;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out after ${ms(timeout)} ms waiting for ${label}`);
}

/** A list of received items that can be awaited. */
export class Inbox {
  constructor(label) {
    this.label = label;
    this.items = [];
    this.waiters = [];
  }

  push(item) {
    this.items.push(item);
    this.waiters = this.waiters.filter((waiter) => !waiter(item));
  }

  names() {
    return this.items.map((item) => item.event);
  }

  /** The first item (already received or future) for which `predicate` is true. */
  waitFor(predicate, what, timeout = 5000) {
    return waitFor(
      `${what} on ${this.label} (got ${JSON.stringify(this.names())})`,
      (resolve) => {
        const found = this.items.find(predicate);
        if (found) return resolve(found);
        this.waiters.push((item) => {
          if (!predicate(item)) return false;
          resolve(item);
          return true;
        });
      },
      timeout,
    );
  }

  waitEvent(name, timeout = 5000) {
    return this.waitFor((item) => item.event === name, `event ${JSON.stringify(name)}`, timeout);
  }
}

const clients = [];
const closers = [];

/** Register a cleanup callback run when the scenario ends (last registered runs first). */
export function onExit(fn) {
  closers.push(fn);
}

/** Options for pusher-js pointed at the server under test. */
export function clientOptions(extra = {}) {
  return {
    cluster: 'mt1',
    wsHost: env.host,
    wsPort: env.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    ...extra,
  };
}

/**
 * A pusher-js client (Node build); `Build` is pusher-js 8 unless given (e.g. 7). Disconnected
 * when the scenario ends.
 */
export function pusherClient(extra = {}, Build = PusherJS) {
  const client = new Build(env.key, clientOptions(extra));
  clients.push(client);
  return client;
}

/**
 * A pusher-js client that may only use the HTTP fallback `transport` (`xhr_streaming` or
 * `xhr_polling`), on the same host and port; `Build` is pusher-js 8 unless given (e.g. 7).
 * Disconnected when the scenario ends.
 */
export function fallbackClient(transport, extra = {}, Build = PusherJS) {
  const options = { httpHost: env.host, httpPort: env.port, enabledTransports: [transport] };
  return pusherClient({ ...options, ...extra }, Build);
}

/** A laravel-echo instance with the `reverb` broadcaster and pusher-js as its Pusher. */
export function echoClient(extra = {}) {
  const echo = new Echo({
    broadcaster: 'reverb',
    key: env.key,
    wsHost: env.host,
    wsPort: env.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    Pusher: PusherJS,
    ...extra,
  });
  clients.push(echo.connector.pusher);
  return echo;
}

/** The Node server SDK (npm `pusher`) pointed at the server under test. */
export function serverSdk(extra = {}) {
  return new PusherServer({
    appId: env.appId,
    key: env.key,
    secret: env.secret,
    host: env.host,
    port: String(env.port),
    useTLS: false,
    timeout: ms(5000),
    ...extra,
  });
}

/** The Node server SDK pointed at node `index` of OVERTONE_PORTS. */
export function sdkAt(index, extra = {}) {
  return serverSdk({ port: String(nodePort(index)), ...extra });
}

/** A signed GET on the HTTP API through the Node SDK (`path` after `/apps/{id}`); its JSON. */
export async function apiGet(sdk, path, params) {
  const response = await sdk.get({ path, params });
  check(response.status === 200, `GET ${path} answered ${response.status}`);
  return response.json();
}

/** A pusher-js `channelAuthorization` signing with the Node SDK's `authorizeChannel`. */
export function sdkChannelAuthorization(sdk, channelData) {
  return {
    customHandler: ({ socketId, channelName }, callback) => {
      try {
        const data = channelData ? channelData(socketId, channelName) : undefined;
        callback(null, sdk.authorizeChannel(socketId, channelName, data));
      } catch (error) {
        callback(error, null);
      }
    },
  };
}

/** A pusher-js `userAuthentication` signing with the Node SDK's `authenticateUser`. */
export function sdkUserAuthentication(sdk, userData) {
  return {
    customHandler: ({ socketId }, callback) => {
      try {
        callback(null, sdk.authenticateUser(socketId, userData));
      } catch (error) {
        callback(error, null);
      }
    },
  };
}

/** Wait until a pusher-js client is connected; return its socket id. */
export async function connected(client, timeout = 5000) {
  await waitFor(
    'pusher-js connection',
    (resolve, reject) => {
      const onState = () => {
        const state = client.connection.state;
        if (state === 'connected') resolve();
        else if (state === 'failed' || state === 'unavailable') {
          reject(new Error(`pusher-js connection went to ${state}`));
        }
      };
      client.connection.bind('state_change', onState);
      onState();
    },
    timeout,
  );
  return client.connection.socket_id;
}

/** The Pusher error code in a pusher-js connection `error` (also when wrapped), else its type. */
export function errorCode(error) {
  return error?.data?.code ?? error?.error?.data?.code ?? error?.type ?? String(error);
}

/** Subscribe and wait for `pusher:subscription_succeeded`; fail on `subscription_error`. */
export async function subscribed(client, name, timeout = 5000) {
  const channel = client.subscribe(name);
  await waitFor(
    `subscription to ${name}`,
    (resolve, reject) => {
      if (channel.subscribed) return resolve();
      channel.bind('pusher:subscription_succeeded', () => resolve());
      channel.bind('pusher:subscription_error', (error) =>
        reject(new Error(`subscription_error on ${name}: ${JSON.stringify(error)}`)),
      );
    },
    timeout,
  );
  return channel;
}

/** Record every non-internal event of the given pusher-js channels into one inbox. */
export function record(label, ...channels) {
  const inbox = new Inbox(label);
  for (const channel of channels) {
    channel.bind_global((event, data) => {
      if (!event.startsWith('pusher:') && !event.startsWith('pusher_internal:')) {
        inbox.push({ channel: channel.name, event, data });
      }
    });
  }
  return inbox;
}

/**
 * Record every frame pusher-js hands to its connection (after parsing) whose event matches
 * `predicate`, including `pusher_internal:*` ones that pusher-js would filter or deduplicate.
 */
export function recordFrames(label, client, predicate = () => true) {
  const inbox = new Inbox(label);
  client.connection.bind('message', (message) => {
    if (predicate(message.event)) {
      inbox.push({ channel: message.channel, event: message.event, data: message.data });
    }
  });
  return inbox;
}

/** A raw `ws` client that keeps every decoded frame; resolves once connected. */
export async function rawClient(timeout = 5000) {
  const socket = new WebSocket(wsUrl());
  const inbox = new Inbox('raw client');
  const frames = [];
  const closed = new Promise((resolve) => socket.on('close', (code) => resolve(code)));
  socket.on('message', (data) => {
    const text = data.toString();
    frames.push(text);
    const message = JSON.parse(text);
    if (typeof message.data === 'string') {
      try {
        message.data = JSON.parse(message.data);
      } catch {
        // keep the string
      }
    }
    inbox.push(message);
  });
  socket.on('error', () => {});
  onExit(() => socket.terminate());
  const established = await inbox.waitEvent('pusher:connection_established', timeout);
  return {
    socket,
    inbox,
    frames,
    closed,
    socketId: established.data.socket_id,
    send: (event, data, channel) =>
      socket.send(JSON.stringify(channel ? { event, data, channel } : { event, data })),
  };
}

/**
 * Print a progress line `{"stage": name, ...}` and wait for the Python side's go-ahead: the line
 * `name`, or `name {json}` whose JSON object is returned (else `{}`).
 */
let stdinLines = null;
export async function stage(name, data = {}, timeout = 15000) {
  if (!stdinLines) {
    stdinLines = new Inbox('stdin');
    const rl = createInterface({ input: process.stdin });
    rl.on('line', (line) => stdinLines.push({ event: line.trim() }));
  }
  process.stdout.write(JSON.stringify({ stage: name, ...data }) + '\n');
  const line = await stdinLines.waitFor(
    (item) => item.event === name || item.event.startsWith(`${name} `),
    `go-ahead for stage ${name}`,
    timeout,
  );
  const rest = line.event.slice(name.length).trim();
  return rest ? JSON.parse(rest) : {};
}

/** Run a scenario: print its JSON result and exit 0, or print the error and exit 1. */
export async function scenario(name, body, timeout = 20000) {
  const timer = setTimeout(() => fail(`${name}: exceeded ${ms(timeout)} ms`), ms(timeout));
  let code = 0;
  try {
    const result = await body();
    process.stdout.write(JSON.stringify({ ok: true, scenario: name, ...result }) + '\n');
  } catch (error) {
    code = 1;
    const message = error instanceof Error ? error.message : String(error);
    process.stdout.write(JSON.stringify({ ok: false, scenario: name, error: message }) + '\n');
    process.stderr.write(`${name} failed: ${error?.stack || message}\n`);
  }
  clearTimeout(timer);
  for (const client of clients) {
    try {
      client.disconnect();
    } catch {
      // already gone
    }
  }
  for (const close of closers.reverse()) {
    try {
      await close();
    } catch {
      // best effort
    }
  }
  process.exit(code);
}
