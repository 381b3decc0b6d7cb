"""Several in-process nodes joined by a synchronous bus: cluster semantics without I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from itertools import count

import orjson

from overtone.apps import App, AppRegistry
from overtone.channels.history import HistoryLimits
from overtone.cluster.coordinator import Coordinator
from overtone.cluster.sequencer import MemorySequencer
from overtone.hub import Hub
from overtone.node import Node
from support.fakes import FakeClient

APP = App(id="1", key="key", secret="secret", history=HistoryLimits(enabled=False))
"""Plain Pusher frames; tests of history across nodes use :data:`HISTORY_APP`."""
HISTORY_APP = App(id="1", key="key", secret="secret")


@dataclass
class Bus:
    """Delivers each flushed envelope to every other node, in order, when :meth:`pump` runs."""

    nodes: list[Coordinator] = field(default_factory=list)
    now: float = 0.0
    up: bool = True
    sequencer: MemorySequencer = field(default_factory=MemorySequencer)
    cut: set[str] = field(default_factory=set)
    """Nodes whose own link to the bus is down (they neither send nor receive)."""

    def add(self, name: str, app: App = APP) -> Coordinator:
        ids = count(1)
        node = Node(AppRegistry([app]))
        prefix = len(self.nodes) + 1
        node.new_socket_id = lambda: f"{prefix}.{next(ids)}"  # type: ignore[method-assign]
        coordinator = Coordinator(node, name, wake=lambda urgent: None)
        for hub in coordinator.hubs.values():
            hub.sequenced = lambda: self.up and name not in self.cut
            hub.load_stream = partial(self._load, hub, name)
        self.nodes.append(coordinator)
        coordinator.connected(self.now)
        self.pump()
        return coordinator

    def pump(self) -> None:
        """Deliver until nothing is queued anywhere (bounded)."""
        for _ in range(50):
            moved = False
            for sender in list(self.nodes):
                outgoing = sender.flush()
                if outgoing is None or not self.up or sender.node_id in self.cut:
                    continue
                envelope = outgoing.envelope
                if outgoing.appends or outgoing.resets:
                    positions = self.sequencer.sequence(outgoing.appends, outgoing.resets, self.now)
                    envelope = b'{"q":%s,"e":%s}' % (orjson.dumps(positions), envelope)
                moved = True
                for receiver in self.nodes:
                    if receiver.node_id not in self.cut:
                        receiver.receive(envelope, self.now)
            if not moved:
                return
        raise AssertionError("the bus did not settle")

    def _load(self, hub: Hub, node: str, channel: str) -> None:
        """Answer a stream read at once (the shared store is this bus's sequencer)."""
        ttl = hub.app.history.ttl
        reachable = self.up and node not in self.cut
        snapshot = self.sequencer.stream(hub.app.id, channel, ttl, self.now) if reachable else None
        hub.stream_loaded(channel, snapshot, self.now)

    def kill(self, coordinator: Coordinator) -> None:
        """The node vanishes without a word (SIGKILL)."""
        self.nodes.remove(coordinator)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for node in self.nodes:
            node.tick(self.now)
        self.pump()


def hub_of(coordinator: Coordinator) -> Hub:
    return coordinator.hubs[APP.id]


def client_on(bus: Bus, coordinator: Coordinator) -> FakeClient:
    client = FakeClient(hub_of(coordinator), now=bus.now).connect()
    client.take()
    bus.pump()
    return client
