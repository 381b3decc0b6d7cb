"""The listener: one port for WebSocket and HTTP, the keepalive clock, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import resource
import secrets
import signal
import socket
import ssl
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from overtone.apps import AppRegistry
from overtone.channels.history import StreamSnapshot
from overtone.cluster.broker import Broker, BrokerFactory
from overtone.cluster.coordinator import COUNT_WINDOW, Coordinator
from overtone.cluster.redis_broker import RedisBroker
from overtone.config import Scaling, Settings
from overtone.dashboard.service import DashboardService
from overtone.http.api import Api
from overtone.hub import Hub
from overtone.node import Node
from overtone.protocol import errors
from overtone.transport.connection import Connection
from overtone.transport.deadlines import Deadlines
from overtone.transport.debug import debug_writer
from overtone.transport.ops import Latency, OpsHandler
from overtone.transport.webhooks import WebhookSender

log = logging.getLogger("overtone.server")

WORKER_ENV = "OVERTONE_WORKER_INDEX"
"""Set in the environment of a ``--workers`` child; the supervisor owns the PID file."""

CLUSTER_JOIN_WAIT = 3.0
"""Seconds a starting node waits for the broker and the other nodes' state."""

WRITE_HIGH_WATER = 64 * 1024
"""Bytes buffered in user space before a connection counts as slow and gets guarded writes."""


@dataclass(eq=False)
class ServerContext:
    """What every connection of one listener shares."""

    settings: Settings
    node: Node
    api: Api
    loop: asyncio.AbstractEventLoop
    http: set[Connection] = field(default_factory=set)
    """Connections still speaking HTTP. An upgraded connection leaves it (a set entry is
    about 100 bytes, 5 % of an idle WebSocket's footprint) and is only counted."""
    websockets: int = 0
    """Connections upgraded to WebSocket and still open (what ``max_connections`` bounds)."""
    stopping: bool = False
    write_high_water: int = WRITE_HIGH_WATER
    max_connections: int = 1 << 62
    last_capacity_warning: float = float("-inf")
    latency: Latency = field(default_factory=Latency)
    protocol_closes: Counter[int] = field(default_factory=Counter)
    ops: OpsHandler | None = None
    dashboard: DashboardService | None = None
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


FD_RESERVE = 256
"""File descriptors kept free for HTTP API calls, Redis, logs and webhooks."""


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


STREAM_READ_TIMEOUT = 5.0
"""Seconds a subscription waits for its stream from the store before it is answered
without a position."""
STREAM_READ_RETRY = 0.5
"""Seconds between reads of a stream the store could not give (within the timeout)."""


class Server:
    """A running overtone listener; :meth:`start`, then :meth:`shutdown`."""

    def __init__(self, settings: Settings, broker_factory: BrokerFactory | None = None) -> None:
        """``broker_factory`` replaces the Redis broker (e.g. an in-process bus in tests)."""
        self.settings = settings
        self.broker_factory = broker_factory
        self.node = Node(AppRegistry(settings.apps), settings.pong_timeout, settings.history_memory)
        self.api = Api(self.node, settings.path, settings.signature_window)
        self._server: asyncio.Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.ctx: ServerContext | None = None
        self.coordinator: Coordinator | None = None
        self.broker: Broker | None = None
        self.webhooks: WebhookSender | None = None
        self.stop_requested = asyncio.Event()
        self._loads: set[asyncio.Task[None]] = set()
        self.node_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        """This process's name in the cluster and on the dashboard."""
        self.dashboard: DashboardService | None = None
        self._port = 0

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return self._port

    async def start(self, sock: socket.socket | None = None) -> None:
        """Join the cluster (when scaling), then bind (or adopt ``sock``) and serve."""
        loop = asyncio.get_running_loop()
        ctx = self.ctx = ServerContext(self.settings, self.node, self.api, loop)
        ctx.ops = OpsHandler(self)
        ctx.max_connections = connection_capacity(self.settings.max_connections)
        self._start_webhooks()
        if self.settings.scaling is not None or self.broker_factory is not None:
            await self._join_cluster(self.settings.scaling or Scaling(redis_url=""))
        dashboard = self.dashboard = ctx.dashboard = DashboardService(self, self.node_id)
        dashboard.start()  # after joining: it listens to the other nodes' reports
        tls = self._tls_context()
        if sock is not None:
            self._server = await loop.create_server(
                lambda: Connection(ctx), sock=sock, backlog=4096, ssl=tls
            )
        else:
            self._server = await loop.create_server(
                lambda: Connection(ctx),
                self.settings.host,
                self.settings.port,
                backlog=4096,
                reuse_address=True,
                reuse_port=self.settings.workers > 1 or None,
                ssl=tls,
            )
        self._port = int(self._server.sockets[0].getsockname()[1])
        ctx.deadlines.start()
        self._ticker = loop.create_task(self._tick())

    def _tls_context(self) -> ssl.SSLContext | None:
        settings = self.settings
        if not settings.tls_cert or not settings.tls_key:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
        context.set_alpn_protocols(["http/1.1"])
        return context

    def request_stop(self, delay: float = 0.0) -> None:
        """Ask :func:`serve` to drain and exit (after ``delay`` seconds)."""
        loop = asyncio.get_running_loop()
        loop.call_later(delay, self.stop_requested.set)

    def _restart_requested(self, rank: int) -> None:
        delay = rank * self.settings.restart_stagger
        log.info("restart requested through the cluster: draining in %.1f s", delay)
        self.request_stop(delay)

    def _start_webhooks(self) -> None:
        apps = [app for app in self.node.registry if app.webhook_urls]
        if not apps:
            return
        sender = self.webhooks = WebhookSender()
        sender.start()
        for app in apps:
            self.node.hub(app).webhook = partial(sender.enqueue, app)

    async def _join_cluster(self, scaling: Scaling) -> None:
        loop = asyncio.get_running_loop()
        node_id = self.node_id
        soon: asyncio.Handle | None = None  # a flush on the next loop iteration
        later: asyncio.TimerHandle | None = None  # a flush of mere counts, COUNT_WINDOW away

        def flush() -> None:
            nonlocal soon, later
            soon = None
            if later is not None:
                later.cancel()
                later = None
            assert self.coordinator is not None and self.broker is not None
            outgoing = self.coordinator.flush()
            if outgoing is not None:
                self.broker.publish(outgoing.envelope, outgoing.appends, outgoing.resets)

        def wake(urgent: bool) -> None:
            nonlocal soon, later
            if soon is not None:
                return
            if urgent:
                soon = loop.call_soon(flush)
            elif later is None:
                later = loop.call_later(COUNT_WINDOW, flush)

        coordinator = self.coordinator = Coordinator(
            self.node, node_id, wake, scaling.heartbeat_interval, scaling.node_timeout
        )
        coordinator.on_restart = self._restart_requested

        def on_message(data: bytes) -> None:
            coordinator.receive(data, loop.time())

        def on_connected() -> None:
            coordinator.connected(loop.time())

        if self.broker_factory is not None:
            self.broker = self.broker_factory(on_message, on_connected)
        else:
            self.broker = RedisBroker(scaling, on_message, on_connected)
        broker = self.broker
        for hub in coordinator.hubs.values():
            hub.sequenced = lambda: broker.connected
            hub.load_stream = partial(self._load_stream, hub)
        await broker.start()
        await self._await_cluster_state(coordinator, broker)

    def _load_stream(self, hub: Hub, channel: str) -> None:
        """Read a history stream from the broker's store for subscriptions waiting on it."""
        assert self.broker is not None
        broker = self.broker
        loop = asyncio.get_running_loop()

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

    async def _await_cluster_state(self, coordinator: Coordinator, broker: Broker) -> None:
        """Before listening, wait (bounded) to hear every other node's state, so the first
        clients see cluster-wide presence. Redis being away only delays the start."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLUSTER_JOIN_WAIT
        while not broker.connected and loop.time() < deadline:
            await asyncio.sleep(0.02)
        if not broker.connected:
            log.warning("starting without the cluster: the broker is not reachable yet")
            return
        peers = await broker.peers()
        while len(coordinator.synced) < peers and loop.time() < deadline:
            await asyncio.sleep(0.01)

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.settings.tick_interval)
            try:
                self.node.tick(loop.time())
                if self.coordinator is not None:
                    self.coordinator.tick(loop.time())
            except Exception:  # keep the clock alive whatever one app does
                log.exception("keepalive tick failed")

    async def shutdown(self) -> None:
        """Stop accepting, close every client with 4200, let HTTP requests finish, then stop.

        Bounded by ``shutdown_timeout``: connections still open then are aborted.
        """
        ctx = self.ctx
        assert ctx is not None and self._server is not None
        if ctx.stopping:
            return
        ctx.stopping = True
        self._server.close()
        if self._ticker is not None:
            self._ticker.cancel()
        if self.dashboard is not None:
            self.dashboard.stop()
        self.node.close_all(errors.SERVER_SHUTTING_DOWN)
        if self.coordinator is not None and self.broker is not None:
            self.coordinator.leave()
            outgoing = self.coordinator.flush()
            if outgoing is not None:
                self.broker.publish(outgoing.envelope, outgoing.appends, outgoing.resets)
            await self.broker.close()
        for conn in list(ctx.http):
            conn.close_http_if_idle()
        # WebSockets were sent 4200 above; each closes on the client's answer or is aborted
        # CLOSE_WAIT seconds later by its own timer.
        deadline = ctx.loop.time() + self.settings.shutdown_timeout
        while ctx.open_connections and ctx.loop.time() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(ctx.http):
            if conn.transport is not None:
                conn.transport.abort()
        ctx.deadlines.close()
        if self.webhooks is not None:
            await self.webhooks.close()
        await asyncio.sleep(0)
        log.info("stopped")


async def serve(settings: Settings, on_ready: Callable[[Server], None] | None = None) -> int:
    """Run until SIGTERM/SIGINT (or a cluster restart), drain gracefully; return the status."""
    server = Server(settings)
    await server.start()
    # What start-up made (modules, settings, apps) lives as long as the process: moved out
    # of the cycle collector's sight, a full collection during a storm of 10 000 connections
    # took 18 ms instead of 90 ms here.
    gc.collect()
    gc.freeze()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, server.stop_requested.set)
    pid_path = settings.pid_path()
    if os.environ.get(WORKER_ENV) is None:
        with contextlib.suppress(OSError):
            pid_path.write_text(f"{os.getpid()}\n")
    log.info(
        "Starting server on %s://%s:%d%s (up to %d connections)",
        settings.scheme,
        settings.host,
        server.port,
        settings.path,
        server.ctx.max_connections if server.ctx else 0,
    )
    if server.dashboard is not None and server.dashboard.enabled:
        log.info(
            "Dashboard on %s://%s:%d%s/dashboard/ (user overtone)",
            settings.scheme,
            "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host,
            server.port,
            settings.path,
        )
    if on_ready is not None:
        on_ready(server)
    try:
        await server.stop_requested.wait()
        log.info("shutting down: closing %d connection(s)", server.node.connection_count())
        await server.shutdown()
    finally:
        if os.environ.get(WORKER_ENV) is None:
            with contextlib.suppress(OSError):
                if pid_path.read_text().split()[0] == str(os.getpid()):
                    pid_path.unlink()
    return 0
