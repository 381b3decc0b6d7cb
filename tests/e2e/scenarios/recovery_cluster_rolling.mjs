// A rolling replacement of a whole cluster (OVERTONE_PORTS: three nodes on one Redis) under a
// steady stream of events: pusher-js 8 with the add-on reaches node 0 through a TCP proxy,
// and events are published continuously through the Node SDK. For each node i in turn the
// proxy is pointed at node i+1 (a load balancer taking node i out), the publisher moves to node
// i+2, and at the stage "drain-i" the Python side SIGTERMs node i (it drains: close code 4200)
// and starts a new node on the same port. The client follows from node 0 to 1, 2 and back to
// the new node 0, recovering each time: every event once, in order, and never a resync.
import http from 'node:http';

import { check, nodePort, ports, scenario, sdkAt, stage, waitUntil } from './lib.mjs';
import { CutProxy, recoveringClient } from './recovery_lib.mjs';
import { Publisher, answers } from './recovery_cluster_lib.mjs';

const CHANNEL = 'recovery-cluster-rolling';
const EVENT = 'tick';

scenario(
  'recovery_cluster_rolling',
  async () => {
    check(ports.length === 3, 'OVERTONE_PORTS must list three nodes', ports);
    // A new connection per request: none is left open to a node that is being replaced.
    const agent = new http.Agent({ keepAlive: false });
    const sdks = ports.map((_, node) => sdkAt(node, { agent }));
    const proxy = await new CutProxy(nodePort(0)).start();
    const client = recoveringClient('pusher-js-8', proxy, CHANNEL, EVENT);
    await client.subscribed();
    const base = proxy.successes(CHANNEL)[0].position.offset;
    const publisher = new Publisher(sdks, CHANNEL, EVENT, { node: 2, base });
    const steps = [];

    publisher.start(15);
    for (let node = 0; node < 3; node += 1) {
      // The client is live on the node about to go: 20 more events have reached it there.
      const seen = client.events().length;
      await client.received(seen + 20, 10000);
      proxy.retarget(nodePort((node + 1) % 3));
      await publisher.moveTo((node + 2) % 3);
      const subscriptions = proxy.successes(CHANNEL).length;
      await stage(`drain-${node}`, { node }, 30000);
      await waitUntil(
        `the resubscription after node ${node} was replaced`,
        () => proxy.successes(CHANNEL).length > subscriptions,
        10000,
      );
      steps.push({ node, published: publisher.count, received: client.events().length });
    }
    const seen = client.events().length;
    await client.received(seen + 20, 10000);
    await publisher.stop();
    // A duplicate or a late event would arrive before this last one.
    await publisher.publish(1);
    const total = publisher.count;
    await client.received(total, 10000);
    await waitUntil(`event ${total}`, () => client.events().at(-1) === total);

    // Per connection: the position the resubscribe recovered from and the offsets it carried.
    const connections = proxy.targets.map((port, i) => {
      const conn = i + 1;
      const frames = proxy.wire.filter((item) => item.conn === conn);
      const subscribe = frames.find(
        (item) => item.dir === 'out' && item.frame.event === 'pusher:subscribe',
      );
      return {
        port,
        recover: subscribe?.frame.data.recover ?? null,
        offsets: frames
          .filter((item) => item.dir === 'in' && item.frame.event === EVENT)
          .map((item) => item.frame.offset),
        errors: frames
          .filter((item) => item.dir === 'in' && item.frame.event === 'pusher:error')
          .map((item) => item.frame.data),
      };
    });

    return {
      base_offset: base,
      total,
      steps,
      received: client.events(),
      timeline_extra: client.timeline.filter((item) => typeof item !== 'number'),
      resyncs: client.resyncs,
      states: client.states,
      per_node: publisher.perNode(),
      successes: answers(proxy, CHANNEL),
      connections,
      position_after: client.handle.position(CHANNEL),
    };
  },
  60000,
);
