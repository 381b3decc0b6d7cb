"""The dashboard's clock: samples each second, pushes the feed, watches across the cluster.

The only asyncio in :mod:`overtone.dashboard`. While the dashboard is enabled the node
samples its counters once a second (a few microseconds), so the graphs hold the last five
minutes when a page opens. Console entries are made only while someone watches: a feed open
on this node, or a ``load`` report marked ``w`` from another node within the last
:data:`~overtone.dashboard.overview.STALE` seconds. While watched, every node sends its
``load`` report (figures and console entries) once a second through the cluster's broker.

A feed is a kept-open HTTP response of server-sent events (``text/event-stream``):
``overview`` once a second and ``console`` batches every :data:`PUSH` seconds. A feed whose
reader falls behind by :data:`MAX_FEED_BUFFER` bytes is closed (the page reconnects).
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import time
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from overtone import __version__
from overtone.cluster.coordinator import Coordinator
from overtone.config import Settings
from overtone.dashboard.console import Console
from overtone.dashboard.overview import STALE, NodeLoad, Sampler, app_figures, nodes_table
from overtone.dashboard.routes import Routes
from overtone.http.api import Api
from overtone.node import Node
from overtone.routing import Stream, StreamWriter
from overtone.stats import Latency

log = logging.getLogger("overtone.dashboard")

PUSH = 0.25
"""Seconds between pushes of console entries to open feeds."""
SAMPLE = 1.0
"""Seconds between samples (and overview events, and ``load`` reports while watched)."""
MAX_FEED_BUFFER = 1_048_576
"""Bytes a feed's reader may fall behind before its connection is closed."""
FEED_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/event-stream; charset=utf-8\r\n"
    b"Cache-Control: no-store\r\n"
    b"X-Accel-Buffering: no\r\n"  # nginx: pass each event on at once
    b"Connection: close\r\n\r\n"
    b"retry: 2000\n\n"
)
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class WebhookCounts(Protocol):
    """What the overview shows of webhook delivery."""

    @property
    def queued(self) -> int:
        """Events waiting to be sent."""

    @property
    def sent(self) -> int:
        """Requests the receiver accepted."""

    @property
    def failed(self) -> int:
        """Requests that failed (each retried)."""

    @property
    def dropped(self) -> int:
        """Events given up on."""


class Host(Protocol):
    """What the dashboard reads of the server it runs in."""

    @property
    def settings(self) -> Settings:
        """The server's settings."""

    @property
    def node(self) -> Node:
        """Every app of this process."""

    @property
    def api(self) -> Api:
        """The HTTP API, which the dashboard's actions call in-process."""

    @property
    def coordinator(self) -> Coordinator | None:
        """The cluster coordinator, ``None`` on a single node."""

    @property
    def latency(self) -> Latency:
        """HTTP API handling times."""

    @property
    def webhooks(self) -> WebhookCounts | None:
        """Webhook delivery, ``None`` when no app has webhooks."""

    @property
    def transports(self) -> dict[str, int]:
        """Open client connections on this node by transport (``ws``, ``xhr_streaming``,
        ``xhr_polling``)."""


@dataclass(eq=False, slots=True)
class Feed:
    """One open feed, written through the transport's stream writer."""

    writer: StreamWriter

    def send(self, event: str, document: Any) -> bool:
        """Write one event; ``False`` (and the feed closed) when the reader is too slow."""
        if self.writer.buffered() > MAX_FEED_BUFFER:
            self.writer.close()
            return False
        data = b"event: " + event.encode() + b"\ndata: " + orjson.dumps(document) + b"\n\n"
        self.writer.write(data)
        return True


def _rss() -> int:
    """Resident memory of this process in bytes (peak where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class DashboardService:
    """Everything the dashboard does on one node."""

    def __init__(self, server: Host, node_id: str) -> None:
        settings = server.settings
        self.server = server
        self.node_id = node_id
        self.console = Console(node_id)
        self.sampler = Sampler(node_id)
        self.routes = Routes(
            settings.path,
            settings.dashboard_password,
            server.node,
            server.api,
            self.console,
            self.overview,
            self.feed,
        )
        self.feeds: dict[StreamWriter, Feed] = {}
        self.others: dict[str, NodeLoad] = {}
        self.watched_until = float("-inf")
        """Loop time until which another node's open dashboard counts as watching."""
        self.started = time.time()
        self._task: asyncio.Task[None] | None = None
        self._dropped_sent = 0

    @property
    def enabled(self) -> bool:
        """Whether a password is set (else every dashboard path answers 404)."""
        return self.routes.gate is not None

    def start(self) -> None:
        """Start sampling (only when enabled); join the cluster's ``load`` reports."""
        if not self.enabled:
            return
        coordinator = self.server.coordinator
        if coordinator is not None:
            coordinator.on_load = self._load_received
        self._task = asyncio.get_running_loop().create_task(self._run(), name="dashboard")

    def stop(self) -> None:
        """Stop the clock and close every feed."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        for writer in list(self.feeds):
            writer.close()
        self.feeds.clear()

    # -- feeds ---------------------------------------------------------------------------

    def feed(self) -> Stream:
        """The answer to ``GET api/feed``: a response that stays open."""
        return Stream(FEED_HEAD, self.open_feed, self.close_feed)

    def open_feed(self, writer: StreamWriter) -> None:
        """Start streaming to ``writer``: the overview and the recent console at once."""
        feed = self.feeds[writer] = Feed(writer)
        self._watch()
        if feed.send("overview", self.overview(False)):
            feed.send("console", {"entries": list(self.console.recent), "dropped": 0})

    def close_feed(self, writer: StreamWriter) -> None:
        """``writer``'s connection is gone."""
        self.feeds.pop(writer, None)
        self._watch()

    # -- the clock -----------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_sample = loop.time()
        while True:
            now = loop.time()
            try:
                if now >= next_sample:
                    next_sample = max(next_sample + SAMPLE, now)
                    self._sample(now)
                self._push()
            except Exception:  # keep the clock alive whatever one sample does
                log.exception("dashboard sample failed")
            await asyncio.sleep(PUSH)

    def _sample(self, now: float) -> None:
        server = self.server
        live = self._live_others(now)
        sample = self.sampler.sample(
            server.node, server.latency, time.time(), now, time.process_time(), _rss(), live
        )
        watched = self._watch()
        coordinator = server.coordinator
        if watched and coordinator is not None:
            report = {**self.sampler.own, "w": 1 if self.feeds else 0, "t": server.transports}
            if self.console.to_cluster:
                report["e"] = self.console.take_outbox()
            coordinator.send_load(report)
        if self.feeds:
            overview = self.overview(False)
            overview["sample"] = sample
            for feed in list(self.feeds.values()):
                feed.send("overview", overview)

    def _push(self) -> None:
        """Send the console entries made since the last push to every open feed."""
        if not self.feeds:
            return
        entries = self.console.take()
        dropped = self.console.dropped
        if not entries and dropped == self._dropped_sent:
            return
        self._dropped_sent = dropped
        document = {"entries": entries, "dropped": dropped}
        for feed in list(self.feeds.values()):
            feed.send("console", document)

    def _watch(self) -> bool:
        """Attach or detach the hubs' ``trace`` as watching starts or stops; whether
        this node is watched."""
        loop_now = asyncio.get_running_loop().time()
        remote = loop_now < self.watched_until
        console = self.console
        console.to_feeds = bool(self.feeds)
        console.to_cluster = remote and self.server.coordinator is not None
        watched = console.to_feeds or console.to_cluster
        if not console.to_cluster:
            console.outbox.clear()
        node = self.server.node
        for app in node.registry:
            hub = node.hub(app)
            if watched and hub.trace is None:
                hub.trace = console.tracer(app.id)
            elif not watched:
                hub.trace = None
        return watched

    # -- the cluster ---------------------------------------------------------------------

    def _load_received(self, sender: str, message: dict[str, Any], now: float) -> None:
        self.others[sender] = NodeLoad(now, message)
        if message.get("w"):
            self.watched_until = now + STALE
        if self.feeds:
            self.console.receive(message.get("e"))

    def _live_others(self, now: float) -> dict[str, NodeLoad]:
        coordinator = self.server.coordinator
        live = coordinator.last_seen if coordinator is not None else {}
        for gone in [node for node in self.others if node not in live]:
            del self.others[gone]
        return {node: load for node, load in self.others.items() if now - load.received <= STALE}

    # -- documents -----------------------------------------------------------------------

    def overview(self, with_series: bool) -> dict[str, Any]:
        """The overview document of docs/dashboard.md."""
        server = self.server
        loop_now = asyncio.get_running_loop().time()
        coordinator = server.coordinator
        hubs = [server.node.hub(app) for app in server.node.registry]
        rates = self.sampler.samples[-1]["apps"] if self.sampler.samples else {}
        apps = []
        for hub in hubs:
            figures = app_figures(hub)
            figures["rates"] = {
                name: value
                for name, value in rates.get(hub.app.id, {}).items()
                if name != "connections"
            }
            apps.append(figures)
        statuses: dict[str, int] = {}
        for (_, status), count in server.latency.statuses.items():
            statuses[str(status)] = statuses.get(str(status), 0) + count
        webhooks = server.webhooks
        document: dict[str, Any] = {
            "node": self.node_id,
            "version": __version__,
            "time": round(time.time(), 3),
            "uptime": round(time.time() - self.started, 1),
            "cluster": coordinator is not None,
            "apps": apps,
            "api": {**self.sampler.api, "by_status": statuses},
            "webhooks": None
            if webhooks is None
            else {
                "queued": webhooks.queued,
                "sent": webhooks.sent,
                "failed": webhooks.failed,
                "dropped": webhooks.dropped,
            },
            "nodes": nodes_table(
                self.node_id,
                {**self.sampler.own, "t": server.transports},
                hubs,
                coordinator.last_seen if coordinator is not None else {},
                self.others,
                loop_now,
            ),
            "console": {"dropped": self.console.dropped},
        }
        if with_series:
            document["series"] = self.sampler.series()
        return document
