"""The cluster side of a server: the coordinator wired to a broker, and history streams read
from the broker's store.

Messages leave in batches: at the next event-loop iteration when a batch holds anything but
counts, within :data:`~overtone.cluster.coordinator.COUNT_WINDOW` otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from functools import partial

from overtone.channels.history import StreamSnapshot
from overtone.cluster.broker import Broker, BrokerFactory
from overtone.cluster.coordinator import COUNT_WINDOW, Coordinator
from overtone.cluster.redis_broker import RedisBroker
from overtone.config import Scaling
from overtone.hub import Hub
from overtone.node import Node

log = logging.getLogger("overtone.server")

CLUSTER_JOIN_WAIT = 3.0
"""Seconds a starting node waits for the broker and the other nodes' state."""
STREAM_READ_TIMEOUT = 5.0
"""Seconds a subscription waits for its stream from the store before it is answered
without a position."""
STREAM_READ_RETRY = 0.5
"""Seconds between reads of a stream the store could not give (within the timeout)."""


class ClusterLink:
    """This node in the cluster: :meth:`join` once, :meth:`leave` at shutdown."""

    def __init__(
        self,
        node: Node,
        node_id: str,
        scaling: Scaling,
        broker_factory: BrokerFactory | None,
        on_restart: Callable[[int], None],
    ) -> None:
        """``broker_factory`` replaces the Redis broker (an in-process bus in tests);
        ``on_restart(rank)`` is called when a rolling restart reaches this node."""
        self.loop = asyncio.get_running_loop()
        self._soon: asyncio.Handle | None = None  # a flush on the next loop iteration
        self._later: asyncio.TimerHandle | None = None  # a flush of mere counts
        self._loads: set[asyncio.Task[None]] = set()
        coordinator = self.coordinator = Coordinator(
            node, node_id, self._wake, scaling.heartbeat_interval, scaling.node_timeout
        )
        coordinator.on_restart = on_restart
        loop = self.loop

        def on_message(data: bytes) -> None:
            coordinator.receive(data, loop.time())

        def on_connected() -> None:
            coordinator.connected(loop.time())

        if broker_factory is not None:
            self.broker: Broker = broker_factory(on_message, on_connected)
        else:
            self.broker = RedisBroker(scaling, on_message, on_connected)
        broker = self.broker
        for hub in coordinator.hubs.values():
            hub.sequenced = lambda: broker.connected
            hub.load_stream = partial(self._load_stream, hub)

    async def join(self) -> None:
        """Start the broker and wait (bounded) to hear every other node's state, so the
        first clients see cluster-wide presence. Redis being away only delays the start."""
        await self.broker.start()
        loop, broker, coordinator = self.loop, self.broker, self.coordinator
        deadline = loop.time() + CLUSTER_JOIN_WAIT
        while not broker.connected and loop.time() < deadline:
            await asyncio.sleep(0.02)
        if not broker.connected:
            log.warning("starting without the cluster: the broker is not reachable yet")
            return
        peers = await broker.peers()
        while len(coordinator.synced) < peers and loop.time() < deadline:
            await asyncio.sleep(0.01)

    def tick(self, now: float) -> None:
        """Heartbeats and dead-node detection (called by the server's clock)."""
        self.coordinator.tick(now)

    async def leave(self) -> None:
        """Tell the other nodes this one leaves, send what is queued, close the broker."""
        self.coordinator.leave()
        self._flush()
        await self.broker.close()

    def _flush(self) -> None:
        self._soon = None
        if self._later is not None:
            self._later.cancel()
            self._later = None
        outgoing = self.coordinator.flush()
        if outgoing is not None:
            self.broker.publish(outgoing.envelope, outgoing.appends, outgoing.resets)

    def _wake(self, urgent: bool) -> None:
        if self._soon is not None:
            return
        if urgent:
            self._soon = self.loop.call_soon(self._flush)
        elif self._later is None:
            self._later = self.loop.call_later(COUNT_WINDOW, self._flush)

    def _load_stream(self, hub: Hub, channel: str) -> None:
        """Read a history stream from the broker's store for subscriptions waiting on it."""
        broker = self.broker
        loop = self.loop

        async def load() -> None:
            snapshot = None
            retry = broker.connected  # a store that refuses while reachable may be electing
            try:
                deadline = loop.time() + STREAM_READ_TIMEOUT
                while True:
                    left = deadline - loop.time()
                    read = broker.stream(hub.app.id, channel, hub.app.history.ttl)
                    snapshot = await asyncio.wait_for(read, max(left, 0.01))
                    late = loop.time() + STREAM_READ_RETRY >= deadline
                    if snapshot is not None or not retry or late:
                        break
                    # The store refused (e.g. a Redis Cluster still electing, a link being
                    # re-established): try again shortly rather than answer without a position.
                    await asyncio.sleep(STREAM_READ_RETRY)
            except TimeoutError:
                log.warning("reading the history of %s timed out", channel)
            finally:
                if snapshot is not None:  # stored_at: wall-clock seconds -> loop time
                    shift = loop.time() - time.time()
                    snapshot = StreamSnapshot(
                        snapshot.epoch,
                        snapshot.offset,
                        [(o, at + shift, payload) for o, at, payload in snapshot.entries],
                        snapshot.excluded,
                    )
                hub.stream_loaded(channel, snapshot, loop.time())

        task = loop.create_task(load())
        self._loads.add(task)
        task.add_done_callback(self._loads.discard)
