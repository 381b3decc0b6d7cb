"""Time-outs of HTTP connections: one periodic sweep instead of a timer per connection.

Every connection starts as HTTP and must finish its request (or its WebSocket handshake)
within ``OVERTONE_HTTP_TIMEOUT``; a kept-alive API connection is closed after
``OVERTONE_KEEPALIVE_TIMEOUT`` of idleness. A ``loop.call_at`` timer per connection, made at
accept and cancelled at the upgrade, was about 4 µs of every handshake (uvloop, measured
with ``benchmarks.run``); here a connection only records its deadline, and a sweep that runs
while any HTTP connection is watched closes the late ones. A time-out therefore fires up to
one ``resolution`` late, which is a fifth of the shortest time-out and at most a second.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class Timed(Protocol):
    """What the sweep needs of a connection."""

    deadline: float
    """Loop time after which :meth:`timed_out` is called (while watched)."""

    def timed_out(self) -> None:
        """The deadline passed; the connection answers 408 or closes, and is forgotten."""


class Deadlines:
    """The HTTP connections of one listener that have a deadline, swept periodically."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *timeouts: float) -> None:
        self.loop = loop
        self.resolution = min(1.0, *(t / 5 for t in timeouts))
        self.watched: set[Timed] = set()
        self._sweep: asyncio.TimerHandle | None = None

    def watch(self, conn: Timed) -> None:
        """Time ``conn`` out once the loop clock passes ``conn.deadline`` (idempotent)."""
        self.watched.add(conn)
        if self._sweep is None:
            self._sweep = self.loop.call_later(self.resolution, self._run)

    def forget(self, conn: Timed) -> None:
        """Stop timing ``conn`` out (upgraded, streaming, waiting on the store, or gone)."""
        self.watched.discard(conn)

    def _run(self) -> None:
        now = self.loop.time()
        late = [conn for conn in self.watched if conn.deadline <= now]
        for conn in late:
            self.watched.discard(conn)
            conn.timed_out()
        self._sweep = self.loop.call_later(self.resolution, self._run) if self.watched else None

    def close(self) -> None:
        """Stop sweeping (shutdown)."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        self.watched.clear()
