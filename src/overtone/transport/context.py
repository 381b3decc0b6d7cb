"""What every connection of one listening port shares: settings, the node, the route sets,
counts and limits."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from overtone.config import Settings
from overtone.node import Node
from overtone.routing import RouteSet
from overtone.transport.deadlines import Deadlines, Timed
from overtone.transport.debug import debug_writer

log = logging.getLogger("overtone.server")

WRITE_HIGH_WATER = 64 * 1024
"""Bytes buffered in user space before a connection counts as slow and gets guarded writes."""


class HttpSide(Timed, Protocol):
    """What the listener needs of a connection still speaking HTTP."""

    transport: asyncio.Transport | None

    def close_if_idle(self) -> bool:
        """Close a kept-alive connection with no request in progress (shutdown)."""


@dataclass(eq=False)
class ConnectionContext:
    """What every connection of one listening port shares."""

    settings: Settings
    node: Node
    routes: Sequence[RouteSet]
    """Asked in order for each HTTP request that is not a WebSocket handshake."""
    loop: asyncio.AbstractEventLoop
    http: set[HttpSide] = field(default_factory=set)
    """Connections still speaking HTTP. An upgraded connection leaves it (a set entry is
    about 100 bytes, 5 % of an idle WebSocket's footprint) and is only counted."""
    websockets: int = 0
    """Connections upgraded to WebSocket and still open."""
    fallback_sessions: int = 0
    """pusher-js HTTP fallback sessions open (with :attr:`websockets`, what
    ``max_connections`` bounds)."""
    stopping: bool = False
    write_high_water: int = WRITE_HIGH_WATER
    max_connections: int = 1 << 62
    last_capacity_warning: float = float("-inf")
    protocol_closes: Counter[int] = field(default_factory=Counter)
    """WebSocket connections closed for a protocol violation, by close code."""
    deadlines: Deadlines = field(init=False)
    """Times out HTTP connections (requests not completed, idle keep-alive)."""
    ws_prefix: str = field(init=False)
    """The path before the app key of the WebSocket endpoint."""
    debug: bool = field(init=False)
    """Whether every frame in and out is logged."""
    max_headers: int = field(init=False)
    max_header_size: int = field(init=False)
    """The settings' header limits, read on every header of every request."""

    def __post_init__(self) -> None:
        settings = self.settings
        self.deadlines = Deadlines(
            self.loop, self.http, settings.http_timeout, settings.keepalive_timeout
        )
        self.ws_prefix = settings.path + "/app/"
        self.debug = settings.debug
        self.max_headers = settings.max_headers
        self.max_header_size = settings.max_header_size

    def over_capacity(self) -> None:
        """Log (at most once a minute) that connections are refused with 4100."""
        now = self.loop.time()
        if now - self.last_capacity_warning >= 60:
            self.last_capacity_warning = now
            log.warning(
                "refusing new connections with 4100: %d open, the limit is %d "
                "(OVERTONE_MAX_CONNECTIONS, or the open-files limit)",
                self.websockets,
                self.max_connections,
            )

    @property
    def open_connections(self) -> int:
        """Every connection of this listener still open, HTTP or WebSocket."""
        return len(self.http) + self.websockets

    @staticmethod
    def debug_writer(write: Callable[[bytes], None]) -> Callable[[bytes], None]:
        """Wrap a connection's ``write`` to log every frame (``--debug``)."""
        return debug_writer(write)
