"""The listener: one port for WebSocket and HTTP, and its drain.

Every accepted connection starts as an :class:`~overtone.transport.http1.HttpConnection`;
a WebSocket handshake hands the socket to a
:class:`~overtone.transport.websocket.WebSocketConnection`. Requests of pusher-js's HTTP
fallback transports reach their sessions (:mod:`overtone.transport.fallback`); every other
HTTP request goes to the route sets the server plugs in (:mod:`overtone.routing`), in order;
the transport knows nothing of what they serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import socket
import ssl
from collections.abc import Sequence

from overtone.config import Settings
from overtone.node import Node
from overtone.routing import RouteSet
from overtone.transport.context import ConnectionContext
from overtone.transport.fallback import FallbackSessions
from overtone.transport.http1 import HttpConnection

log = logging.getLogger("overtone.server")

FD_RESERVE = 256
"""File descriptors kept free for HTTP API calls, Redis, logs and webhooks."""


class Listener:
    """One listening port: :meth:`listen`, later :meth:`stop_accepting` and :meth:`drain`."""

    def __init__(
        self,
        settings: Settings,
        node: Node,
        routes: Sequence[RouteSet],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        """``routes`` are asked in order for each HTTP request that is not a handshake or
        a request of pusher-js's HTTP fallback transports (served first, when enabled)."""
        self.ctx = ConnectionContext(settings, node, routes, loop)
        self.fallback: FallbackSessions | None = None
        if settings.http_fallback:
            self.fallback = FallbackSessions(self.ctx)
            self.ctx.routes = [self.fallback, *routes]
        self._server: asyncio.Server | None = None

    async def listen(self, sock: socket.socket | None = None) -> int:
        """Bind the settings' address (or adopt ``sock``), start serving; the bound port."""
        ctx = self.ctx
        settings = ctx.settings
        tls = tls_context(settings)
        ctx.max_connections = connection_capacity(settings.max_connections)
        if sock is not None:
            server = await ctx.loop.create_server(
                lambda: HttpConnection(ctx), sock=sock, backlog=4096, ssl=tls
            )
        else:
            server = await ctx.loop.create_server(
                lambda: HttpConnection(ctx),
                settings.host,
                settings.port,
                backlog=4096,
                reuse_address=True,
                reuse_port=settings.workers > 1 or None,
                ssl=tls,
            )
        self._server = server
        ctx.deadlines.start()
        if self.fallback is not None:
            self.fallback.start()
        return int(server.sockets[0].getsockname()[1])

    @property
    def stopping(self) -> bool:
        """Whether the drain has begun (or the port was never opened)."""
        return self.ctx.stopping or self._server is None

    def stop_accepting(self) -> None:
        """Stop accepting; handshakes still arriving are refused with 4200."""
        self.ctx.stopping = True
        if self._server is not None:
            self._server.close()

    async def drain(self, timeout: float) -> None:
        """Close idle HTTP connections, wait (at most ``timeout`` seconds) for the rest and
        for WebSockets already told to close, then abort what is left."""
        ctx = self.ctx
        for conn in list(ctx.http):
            conn.close_if_idle()
        deadline = ctx.loop.time() + timeout
        while ctx.open_connections and ctx.loop.time() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(ctx.http):
            if conn.transport is not None:
                conn.transport.abort()
        ctx.deadlines.close()
        if self.fallback is not None:
            self.fallback.close()


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of ``OVERTONE_TLS_CERT``/``OVERTONE_TLS_KEY``, ``None`` without them."""
    if not settings.tls_cert or not settings.tls_key:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    context.set_alpn_protocols(["http/1.1"])
    return context


def connection_capacity(configured: int | None) -> int:
    """WebSocket connections this process accepts before refusing with 4100.

    The soft open-files limit is first raised to the hard limit (the classic 1024 ceiling);
    without ``OVERTONE_MAX_CONNECTIONS`` the capacity is that limit minus a reserve, so the
    process refuses cleanly instead of failing ``accept()`` for everyone.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    by_files = max(soft - FD_RESERVE, 1)
    if configured is not None and configured > by_files:
        log.warning(
            "OVERTONE_MAX_CONNECTIONS=%d exceeds what the open-files limit allows (%d)",
            configured,
            by_files,
        )
    return min(configured, by_files) if configured is not None else by_files
