// Clients that stay connected through a Redis outage (OVERTONE_PORTS: three nodes on one
// Redis): pusher-js 8 on node 0 and laravel-echo 2 on node 1, each with the add-on, through a
// proxy that never cuts. At the stage "stop-redis" the Python side stops Redis; while it is
// down, events 6..10 are published through node 2, which can only deliver them to its own
// clients: these two never get them. At "start-redis" Redis comes back empty; once every node
// is back on it, each node tells its subscribers that the channel's stream restarted:
// onResync once, `overtone:resync` once on the channel, no reconnect, nothing old; the events
// published afterwards arrive as usual.
import { scenario, stage, waitUntil } from './lib.mjs';
import { publish, range } from './recovery_lib.mjs';
import { numbered, startedWithFive } from './recovery_cluster_lib.mjs';

const CHANNEL = 'recovery-cluster-stay';
const EVENT = 'tick';
const CLIENTS = [
  { kind: 'pusher-js-8', node: 0 },
  { kind: 'laravel-echo', node: 1 },
];

scenario(
  'recovery_cluster_stay',
  async () => {
    const { sdks, proxies, clients, sockets, before } = await startedWithFive(
      CLIENTS,
      CHANNEL,
      EVENT,
    );

    await stage('stop-redis', {}, 30000);
    await publish(sdks[2], CHANNEL, EVENT, range(6, 10)); // reaches node 2's clients only
    await stage('start-redis', {}, 30000);

    await Promise.all(
      clients.map((client) =>
        waitUntil(
          `resync of ${client.kind}`,
          () => client.timeline.includes('onResync') && client.timeline.includes('overtone:resync'),
          30000,
        ),
      ),
    );
    const afterResync = clients.map((client) => client.handle.position(CHANNEL));
    await publish(sdks[1], CHANNEL, EVENT, range(11, 15));
    await Promise.all(clients.map((client) => client.received(10, 10000)));
    const renumbered = await numbered(sdks[0], CHANNEL, 5);

    return {
      new_epoch_position: renumbered,
      clients: clients.map((client, i) => ({
        client: client.kind,
        first_socket: sockets[i],
        socket_at_end: client.pusher.connection.socket_id,
        timeline: client.timeline,
        resyncs: client.resyncs,
        states: client.states,
        position_before: before[i],
        position_after_resync: afterResync[i],
        position_at_end: client.handle.position(CHANNEL),
        subscribes: proxies[i].subscribes(CHANNEL).length,
      })),
    };
  },
  90000,
);
