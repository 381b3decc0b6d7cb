"""All apps served by this process: the registry and one :class:`Hub` per app. Sans-I/O."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator

from overtone.apps import App, AppRegistry
from overtone.channels.history import HistoryBudget
from overtone.hub import Hub
from overtone.hub_state import DEFAULT_HISTORY_MEMORY
from overtone.protocol.errors import PusherError

ID_BATCH = 512
"""Socket ids drawn from one read of the CSPRNG."""
_BATCH = struct.Struct(f"<{ID_BATCH}Q")


class Node:
    """The core of one server process; the transport and the HTTP API drive it."""

    def __init__(
        self,
        registry: AppRegistry,
        pong_timeout: float = 30.0,
        history_memory: int = DEFAULT_HISTORY_MEMORY,
    ) -> None:
        self.registry = registry
        self.pong_timeout = pong_timeout
        self.history_budget = HistoryBudget(history_memory)
        """One memory cap over every app's history on this node."""
        self._hubs: dict[str, Hub] = {}
        self._id_pool: list[int] = []

    def hub(self, app: App) -> Hub:
        """The hub of ``app``, created on first use."""
        hub = self._hubs.get(app.id)
        if hub is None:
            hub = self._hubs[app.id] = Hub(
                app, self.new_socket_id, self.pong_timeout, self.history_budget
            )
        return hub

    def hubs(self) -> Iterator[Hub]:
        """Every hub created so far."""
        return iter(list(self._hubs.values()))

    def new_socket_id(self) -> str:
        """A fresh ``^\\d+\\.\\d+$`` socket id; 2**60 possibilities make collisions moot.

        The 60 bits come from the operating system's CSPRNG, read :data:`ID_BATCH` ids at a
        time: one ``getrandom`` call per id was an eighth of a connection's CPU.
        """
        pool = self._id_pool
        if not pool:
            pool.extend(_BATCH.unpack(os.urandom(_BATCH.size)))
        bits = pool.pop()
        return f"{bits >> 34}.{bits & 0x3FFFFFFF}"

    def connection_count(self) -> int:
        """Open sessions over all apps."""
        return sum(len(h.sessions) for h in self._hubs.values())

    def tick(self, now: float) -> None:
        """Keepalive and housekeeping for every hub."""
        for hub in self.hubs():
            hub.tick(now)

    def close_all(self, err: PusherError) -> None:
        """Close every session of every app with ``err``."""
        for hub in self.hubs():
            hub.close_all(err)
