"""Time-outs of HTTP connections: one periodic sweep instead of a timer per connection.

Every connection starts as HTTP and must finish its request (or its WebSocket handshake)
within ``OVERTONE_HTTP_TIMEOUT``; a kept-alive API connection is closed after
``OVERTONE_KEEPALIVE_TIMEOUT`` of idleness. A ``loop.call_at`` timer per connection, made at
accept and cancelled at the upgrade, was 7 µs of every handshake's Python
(``benchmarks.inprocess``). Here a connection only records its deadline, and a sweep over the
listener's HTTP connections closes the late ones. A time-out therefore fires up to one
``resolution`` late: a fifth of the shortest time-out, and at most a second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Set
from typing import Protocol


class Timed(Protocol):
    """What the sweep needs of an HTTP connection."""

    deadline: float
    """Loop time after which :meth:`timed_out` is called (``math.inf``: never)."""

    def timed_out(self) -> None:
        """The deadline passed: answer 408 mid-request, or close an idle connection."""


class Deadlines:
    """Sweeps a listener's HTTP connections every ``resolution`` seconds."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, connections: Set[Timed], *timeouts: float
    ) -> None:
        """``connections`` is the live set of HTTP connections (read at each sweep)."""
        self.loop = loop
        self.connections = connections
        self.resolution = min(1.0, *(t / 5 for t in timeouts))
        self._sweep: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Begin sweeping (idempotent)."""
        if self._sweep is None:
            self._sweep = self.loop.call_later(self.resolution, self._run)

    def _run(self) -> None:
        now = self.loop.time()
        for conn in [conn for conn in self.connections if conn.deadline <= now]:
            conn.timed_out()
        self._sweep = self.loop.call_later(self.resolution, self._run)

    def close(self) -> None:
        """Stop sweeping (shutdown)."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
