// Recovery that cannot succeed in a cluster (OVERTONE_PORTS: three nodes on one Redis): Redis
// is restarted without persistence while two clients with the add-on are cut off (their
// proxies reset the connections and hold new ones until the network is back), pusher-js 8
// (through a proxy to node 0) and laravel-echo 2 (through a proxy to node 1). Redis lost every
// stream, so the channel starts a new epoch; events 6..10 are published in it while the
// clients are away. They come back through other nodes (2 and 0), are answered
// `recovered: false`, call onResync once and get `overtone:resync` once on the channel (Echo:
// `.listen('.overtone:resync')`), nothing old; the events published afterwards arrive as usual.
// At the stage "restart-redis" the Python side restarts Redis and waits until every node is
// back on it.
import { check, nodePort, scenario, stage, sleep, waitUntil } from './lib.mjs';
import { publish, range } from './recovery_lib.mjs';
import { answers, numbered, startedWithFive } from './recovery_cluster_lib.mjs';

const CHANNEL = 'recovery-cluster-epoch';
const EVENT = 'tick';
const CLIENTS = [
  { kind: 'pusher-js-8', node: 0, back: 2 },
  { kind: 'laravel-echo', node: 1, back: 0 },
];

scenario(
  'recovery_cluster_epoch',
  async () => {
    const { sdks, proxies, clients, sockets, before } = await startedWithFive(
      CLIENTS,
      CHANNEL,
      EVENT,
    );

    for (const proxy of proxies) proxy.cut({ hold: true });
    const cutAt = Date.now();
    await stage('restart-redis', {}, 30000);
    await publish(sdks[2], CHANNEL, EVENT, range(6, 10), 20);
    const renumbered = await numbered(sdks[2], CHANNEL, 5);
    check(renumbered.epoch !== before[0].epoch, 'a new epoch after Redis lost the streams', [
      before[0],
      renumbered,
    ]);
    const away = 5000 - (Date.now() - cutAt);
    if (away > 0) await sleep(away);
    CLIENTS.forEach(({ back }, i) => {
      proxies[i].retarget(nodePort(back));
      proxies[i].restore();
    });

    await Promise.all(
      clients.map((client) =>
        waitUntil(
          `resync of ${client.kind}`,
          () =>
            client.timeline.includes('onResync') &&
            client.timeline.includes('overtone:resync') &&
            client.pusher.channel(CHANNEL)?.subscribed,
          30000,
        ),
      ),
    );
    const afterResync = clients.map((client) => client.handle.position(CHANNEL));
    await publish(sdks[1], CHANNEL, EVENT, range(11, 15));
    await Promise.all(
      clients.map((client) =>
        waitUntil(`event 15 on ${client.kind}`, () => client.events().includes(15)),
      ),
    );

    return {
      new_epoch_position: renumbered,
      clients: clients.map((client, i) => ({
        client: client.kind,
        first_socket: sockets[i],
        timeline: client.timeline,
        resyncs: client.resyncs,
        states: client.states,
        position_before_cut: before[i],
        position_after_resync: afterResync[i],
        position_at_end: client.handle.position(CHANNEL),
        proxy_targets: proxies[i].targets,
        proxy_held: proxies[i].heldCount,
        proxy_refused: proxies[i].refused,
        subscribes: proxies[i].subscribes(CHANNEL),
        successes: answers(proxies[i], CHANNEL),
      })),
    };
  },
  60000,
);
