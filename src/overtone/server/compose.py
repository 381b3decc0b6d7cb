"""The server, assembled: the node and its HTTP API, the cluster link, webhooks, the
dashboard, ``/ready`` and ``/metrics``, and the listener that serves them on one port.

This is the one module that knows every part; each part knows only the layers below it
(ARCHITECTURE.md). Route sets are asked in order: operations, the dashboard, then the API,
which answers everything else.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections import Counter
from functools import partial

from overtone.apps import AppRegistry
from overtone.cluster.broker import Broker, BrokerFactory
from overtone.cluster.coordinator import Coordinator
from overtone.config import Scaling, Settings
from overtone.dashboard.service import DashboardService
from overtone.http.api import Api
from overtone.node import Node
from overtone.ops.routes import OpsRoutes
from overtone.protocol import errors
from overtone.routing import RouteSet
from overtone.server.api_routes import ApiRoutes
from overtone.server.cluster_link import ClusterLink
from overtone.server.count_clock import CountClock
from overtone.server.webhooks import WebhookSender
from overtone.stats import Latency
from overtone.transport.fallback_cluster import FallbackCluster
from overtone.transport.listener import Listener

log = logging.getLogger("overtone.server")


class Server:
    """A running overtone process's server: :meth:`start`, then :meth:`shutdown`."""

    def __init__(self, settings: Settings, broker_factory: BrokerFactory | None = None) -> None:
        """``broker_factory`` replaces the Redis broker (e.g. an in-process bus in tests)."""
        self.settings = settings
        self.broker_factory = broker_factory
        self.node = Node(AppRegistry(settings.apps), settings.pong_timeout, settings.history_memory)
        self.api = Api(self.node, settings.path, settings.signature_window)
        self.latency = Latency()
        """HTTP API handling times (``/metrics``, the dashboard)."""
        self.listener: Listener | None = None
        self.cluster: ClusterLink | None = None
        self.webhooks: WebhookSender | None = None
        self.dashboard: DashboardService | None = None
        self.stop_requested = asyncio.Event()
        self.node_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        """This process's name in the cluster and on the dashboard."""
        self._ticker: asyncio.Task[None] | None = None
        self._count_clocks: list[CountClock] = []
        self._port = 0

    # -- what the route sets read (ops.metrics.Observed, dashboard.service.Host) ----------

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return self._port

    @property
    def coordinator(self) -> Coordinator | None:
        """The cluster coordinator, ``None`` on a single node."""
        return self.cluster.coordinator if self.cluster is not None else None

    @property
    def broker(self) -> Broker | None:
        """The cluster broker, ``None`` on a single node."""
        return self.cluster.broker if self.cluster is not None else None

    @property
    def draining(self) -> bool:
        """Whether this node is not taking new clients (not started yet, or draining)."""
        return self.listener is None or self.listener.stopping

    @property
    def protocol_closes(self) -> Counter[int]:
        """WebSocket connections closed for a protocol violation, by close code."""
        return self.listener.ctx.protocol_closes if self.listener is not None else Counter()

    @property
    def transports(self) -> dict[str, int]:
        """Open client connections on this node by transport."""
        listener = self.listener
        if listener is None:
            return {"ws": 0}
        counts = {"ws": listener.ctx.websockets}
        if listener.fallback is not None:
            counts.update(listener.fallback.counts)
        return counts

    @property
    def max_connections(self) -> int:
        """WebSocket connections this process accepts before refusing with 4100."""
        return self.listener.ctx.max_connections if self.listener is not None else 0

    # -- life ----------------------------------------------------------------------------

    async def start(self, sock: socket.socket | None = None) -> None:
        """Join the cluster (when scaling), then bind (or adopt ``sock``) and serve."""
        loop = asyncio.get_running_loop()
        self._start_webhooks()
        for app in self.node.registry:
            hub = self.node.hub(app)
            if hub.count_events is not None or hub.count_hooks is not None:
                self._count_clocks.append(CountClock(hub, loop))
        if self.settings.scaling is not None or self.broker_factory is not None:
            self.cluster = ClusterLink(
                self.node,
                self.node_id,
                self.settings.scaling or Scaling(redis_url=""),
                self.broker_factory,
                self._restart_requested,
            )
            await self.cluster.join()
        dashboard = self.dashboard = DashboardService(self, self.node_id)
        dashboard.start()  # after joining: it listens to the other nodes' reports
        routes: list[RouteSet] = [
            OpsRoutes(self, self.settings.path, self.settings.metrics_token),
            dashboard.routes,
            ApiRoutes(self.api, self.latency),
        ]
        self.listener = Listener(self.settings, self.node, routes, loop)
        fallback = self.listener.fallback
        if self.cluster is not None and fallback is not None:
            coordinator = self.cluster.coordinator
            link = fallback.cluster = FallbackCluster(
                fallback, self.node_id, coordinator.send_fallback
            )
            coordinator.on_fallback = link.receive
            coordinator.on_node = link.node_changed
        self._port = await self.listener.listen(sock)
        self._ticker = loop.create_task(self._tick())

    def request_stop(self, delay: float = 0.0) -> None:
        """Ask :func:`~overtone.server.run.serve` to drain and exit (after ``delay`` s)."""
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

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.settings.tick_interval)
            try:
                self.node.tick(loop.time())
                if self.cluster is not None:
                    self.cluster.tick(loop.time())
            except Exception:  # keep the clock alive whatever one app does
                log.exception("keepalive tick failed")

    async def shutdown(self) -> None:
        """Stop accepting, close every client with 4200, let HTTP requests finish, then stop.

        Bounded by ``shutdown_timeout``: connections still open then are aborted.
        """
        listener = self.listener
        assert listener is not None
        if listener.ctx.stopping:
            return
        listener.stop_accepting()
        if self._ticker is not None:
            self._ticker.cancel()
        for clock in self._count_clocks:
            clock.stop()
        if self.dashboard is not None:
            self.dashboard.stop()
        self.node.close_all(errors.SERVER_SHUTTING_DOWN)
        if self.cluster is not None:
            await self.cluster.leave()
        # WebSockets were sent 4200 above; each closes on the client's answer or is aborted
        # CLOSE_WAIT seconds later by its own timer.
        await listener.drain(self.settings.shutdown_timeout)
        if self.webhooks is not None:
            await self.webhooks.close()
        await asyncio.sleep(0)
        log.info("stopped")
