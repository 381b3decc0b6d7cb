// Helpers of the cluster recovery scenarios (recovery_cluster_*.mjs): a publisher that moves
// between the nodes of a cluster without reordering its events, and what the wire log of a
// CutProxy says about a channel's last connection.
import { check, nodePort, poll, ports, sdkAt, sleep } from './lib.mjs';
import { CutProxy, httpPosition, publish, range, recoveringClient } from './recovery_lib.mjs';

/** A bound on what one publisher sends (a runaway loop fails instead of flooding). */
const MAX_EVENTS = 5000;

/** Wait until node `sdk`'s HTTP API gives `channel` a position of at least `offset`. */
export function numbered(sdk, channel, offset, timeout = 5000) {
  return poll(
    `position ${offset} of ${channel}`,
    async () => {
      const position = await httpPosition(sdk, channel);
      return position.offset >= offset && position;
    },
    timeout,
  );
}

/**
 * Triggers `event` with `{n}`, n = 1, 2, 3..., on `channel` through the Node SDK of one node
 * of `sdks` at a time, one request at a time. A node numbers its own events in the order it
 * publishes them, but two nodes race; so before it moves to another node the publisher waits
 * until that node's position counts every event published so far (`base` is the channel's
 * offset before event 1): the stream's order is then the order of n. `sent[n - 1]` is the
 * node that published n. `start(gap)` publishes continuously until `stop()`; `moveTo(node)`
 * also works while it runs (it takes effect between two events).
 */
export class Publisher {
  constructor(sdks, channel, event, { node = 0, base = 0 } = {}) {
    this.sdks = sdks;
    this.channel = channel;
    this.event = event;
    this.node = node;
    this.base = base;
    this.sent = [];
    this.loop = null;
    this.stopping = false;
    this.move = null;
    this.error = null;
  }

  get count() {
    return this.sent.length;
  }

  async trigger(params) {
    const n = this.count + 1;
    check(n <= MAX_EVENTS, `more than ${MAX_EVENTS} events published`);
    const answer = await this.sdks[this.node].trigger(this.channel, this.event, { n }, params);
    check(answer.status === 200, `trigger ${n} on node ${this.node} answered ${answer.status}`);
    this.sent.push(this.node);
  }

  /**
   * Publish the next `count` events, `gap` ms apart (scaled); `params` are the SDK's trigger
   * parameters (`{socket_id}`: not to that connection).
   */
  async publish(count, gap = 0, params = undefined) {
    for (let i = 0; i < count; i += 1) {
      await this.trigger(params);
      if (gap) await sleep(gap);
    }
  }

  async switchTo(node) {
    if (node === this.node) return;
    await numbered(this.sdks[node], this.channel, this.base + this.count);
    this.node = node;
  }

  /** Publish on `node` from the next event on. */
  moveTo(node) {
    if (!this.loop) return this.switchTo(node);
    check(this.move === null, 'one move at a time');
    return new Promise((resolve, reject) => {
      this.move = { node, resolve, reject };
    });
  }

  /** Publish continuously, `gap` ms (scaled) between two events, until `stop()`. */
  start(gap) {
    check(this.loop === null, 'the publisher is already running');
    this.stopping = false;
    const run = async () => {
      while (!this.stopping) {
        if (this.move) {
          const { node, resolve, reject } = this.move;
          this.move = null;
          try {
            await this.switchTo(node);
            resolve();
          } catch (error) {
            reject(error);
            throw error;
          }
        }
        await this.trigger();
        await sleep(gap);
      }
    };
    this.loop = run().catch((error) => {
      this.error = error;
    });
  }

  /** Stop publishing (after the event in flight); fail if the loop failed. */
  async stop() {
    this.stopping = true;
    await this.loop;
    this.loop = null;
    if (this.move) this.move.reject(new Error('the publisher stopped before moving'));
    this.move = null;
    if (this.error) throw this.error;
  }

  /** How many events each node published, by node index. */
  perNode() {
    const counts = this.sdks.map(() => 0);
    for (const node of this.sent) counts[node] += 1;
    return counts;
  }
}

/**
 * The last connection of `proxy` that subscribed to `channel`, and what it carried: the
 * port it was forwarded to, the offsets of `event` frames, and the `pusher_internal:skipped`
 * offsets, in arrival order.
 */
export function lastConnection(proxy, channel, event) {
  const subscribed = proxy.frames('in', 'pusher_internal:subscription_succeeded', channel);
  check(subscribed.length > 0, `no subscription to ${channel} on the wire`);
  const { conn } = subscribed.at(-1);
  const frames = proxy.wire.filter(
    (item) => item.dir === 'in' && item.conn === conn && item.frame.channel === channel,
  );
  return {
    conn,
    port: proxy.targets[conn - 1],
    offsets: frames.filter((item) => item.frame.event === event).map((item) => item.frame.offset),
    skipped: frames
      .filter((item) => item.frame.event === 'pusher_internal:skipped')
      .map((item) => item.frame.offset),
    sequence: frames.map((item) => [item.frame.event, item.frame.offset ?? null]),
  };
}

/** `{position, recovered}` of every `subscription_succeeded` of `channel` on the wire. */
export const answers = (proxy, channel) =>
  proxy.successes(channel).map(({ position, recovered }) => ({ position, recovered }));

/**
 * The start every cluster scenario shares: an SDK per node of the three, a CutProxy to node 0,
 * and a recovering `flavour` client subscribed to `channel` through it; with the client's first
 * socket id and the channel's offset when it subscribed.
 */
export async function subscribedThroughNodeZero(flavour, channel, event) {
  check(ports.length === 3, 'OVERTONE_PORTS must list three nodes', ports);
  const sdks = ports.map((_, node) => sdkAt(node));
  const proxy = await new CutProxy(nodePort(0)).start();
  const client = recoveringClient(flavour, proxy, channel, event);
  await client.subscribed();
  const firstSocket = client.pusher.connection.socket_id;
  const base = proxy.successes(channel)[0].position.offset;
  return { sdks, proxy, client, firstSocket, base };
}

/**
 * The start both "whole cluster" recovery scenarios share: an SDK per node, one CutProxy per
 * client towards its node (`clients`: `[{kind, node}]`), the clients subscribed to `channel`
 * with the add-on, events 1..5 published through node 2 and received by all. Returns the SDKs,
 * proxies, clients, their first socket ids and their positions after event 5.
 */
export async function startedWithFive(clients, channel, event) {
  check(ports.length === 3, 'OVERTONE_PORTS must list three nodes', ports);
  const sdks = ports.map((_, node) => sdkAt(node));
  const proxies = await Promise.all(clients.map(({ node }) => new CutProxy(nodePort(node)).start()));
  const started = clients.map(({ kind }, i) => recoveringClient(kind, proxies[i], channel, event));
  await Promise.all(started.map((client) => client.subscribed()));
  const sockets = started.map((client) => client.pusher.connection.socket_id);
  await publish(sdks[2], channel, event, range(1, 5));
  await Promise.all(started.map((client) => client.received(5)));
  const before = started.map((client) => client.handle.position(channel));
  return { sdks, proxies, clients: started, sockets, before };
}
