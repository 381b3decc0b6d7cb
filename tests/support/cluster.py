"""Several in-process nodes joined by a synchronous bus: cluster semantics without I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count

from overtone.apps import App, AppRegistry
from overtone.cluster.coordinator import Coordinator
from overtone.hub import Hub
from overtone.node import Node
from support.fakes import FakeClient

APP = App(id="1", key="key", secret="secret")


@dataclass
class Bus:
    """Delivers each flushed envelope to every other node, in order, when :meth:`pump` runs."""

    nodes: list[Coordinator] = field(default_factory=list)
    now: float = 0.0
    up: bool = True

    def add(self, name: str, app: App = APP) -> Coordinator:
        ids = count(1)
        node = Node(AppRegistry([app]))
        prefix = len(self.nodes) + 1
        node.new_socket_id = lambda: f"{prefix}.{next(ids)}"  # type: ignore[method-assign]
        coordinator = Coordinator(node, name, wake=lambda: None)
        self.nodes.append(coordinator)
        coordinator.connected(self.now)
        self.pump()
        return coordinator

    def pump(self) -> None:
        """Deliver until nothing is queued anywhere (bounded)."""
        for _ in range(50):
            moved = False
            for sender in list(self.nodes):
                envelope = sender.flush()
                if envelope is None or not self.up:
                    continue
                moved = True
                for receiver in self.nodes:
                    receiver.receive(envelope, self.now)
            if not moved:
                return
        raise AssertionError("the bus did not settle")

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
