"""Operations endpoints served next to the API: readiness and Prometheus ``/metrics``.

``/ready`` answers 503 while the node drains or while its cluster broker is unreachable, so
a load balancer stops sending new clients to it; ``/up`` (liveness) stays 200 meanwhile.
``/metrics`` renders the plain counters of every hub at scrape time with
``prometheus_client``; with ``OVERTONE_METRICS_TOKEN`` set it needs
``Authorization: Bearer <token>`` (or ``?token=``).
"""

from __future__ import annotations

import bisect
import functools
import hmac
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from overtone.hub import Hub
    from overtone.transport.server import Server

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0)


class Latency:
    """A fixed-bucket histogram of HTTP API handling time, per route kind."""

    def __init__(self) -> None:
        self.buckets: dict[str, list[int]] = {}
        self.sums: dict[str, float] = {}
        self.statuses: Counter[tuple[str, int]] = Counter()

    def observe(self, route: str, seconds: float, status: int) -> None:
        counts = self.buckets.get(route)
        if counts is None:
            counts = self.buckets[route] = [0] * (len(LATENCY_BUCKETS) + 1)
        counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.sums[route] = self.sums.get(route, 0.0) + seconds
        key = (route, status)
        self.statuses[key] = self.statuses.get(key, 0) + 1


ROUTE_KINDS = frozenset(
    {"events", "batch_events", "connections", "terminate_connections", "up", "recovery.js"}
)


@functools.lru_cache(maxsize=1024)
def route_kind(path: str) -> str:
    """A low-cardinality label for an API path (``events``, ``channel``, ...).

    Labels come from a fixed set: any other path (a scanner's, a browser's
    ``/favicon.ico``) is ``other``, so no request can add a metric series. Cached: an app
    calls the same few paths over and over.
    """
    parts = path.partition("?")[0].strip("/").split("/")
    if "apps" in parts:
        rest = parts[parts.index("apps") + 2 :]
        if rest and rest[0] == "channels":
            kind = {1: "channels", 2: "channel", 3: rest[-1]}.get(len(rest), "other")
            return kind if kind in ("channels", "channel", "users", "history") else "other"
        kind = (rest[0] if len(rest) == 1 else rest[-1]) if rest else "other"
        return kind if kind in ROUTE_KINDS else "other"
    return parts[-1] if parts[-1] in ROUTE_KINDS else "other"


def readiness(server: Server) -> tuple[int, bytes]:
    """``/ready``: 200 when this node should get new clients, else 503 with the reason."""
    ctx = server.ctx
    if ctx is None or ctx.stopping:
        return 503, orjson.dumps({"ready": False, "reason": "draining"})
    if server.broker is not None and not server.broker.connected:
        return 503, orjson.dumps({"ready": False, "reason": "cluster broker unreachable"})
    return 200, orjson.dumps({"ready": True})


def metrics_allowed(token: str | None, target: str, authorization: bytes | None) -> bool:
    """Whether a scrape is authorised (always, when no token is configured)."""
    if not token:
        return True
    given = ""
    if authorization is not None and authorization.lower().startswith(b"bearer "):
        given = authorization[7:].decode("latin-1").strip()
    if not given:
        given = parse_qs(target.partition("?")[2]).get("token", [""])[-1]
    return hmac.compare_digest(given.encode(), token.encode())


class OvertoneCollector(Collector):
    """Reads the hubs' counters when Prometheus scrapes."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def collect(self) -> Iterator[Metric]:
        server = self.server
        hubs = list(server.node.hubs())
        yield from _per_app(
            GaugeMetricFamily,
            "overtone_connections",
            "Open WebSocket connections on this node",
            ((h.app.id, len(h.sessions)) for h in hubs),
        )
        yield from _per_app(
            GaugeMetricFamily,
            "overtone_cluster_connections",
            "Open WebSocket connections in the whole cluster",
            ((h.app.id, h.connection_count()) for h in hubs),
        )
        yield from _per_app(
            GaugeMetricFamily,
            "overtone_channels",
            "Occupied channels on this node",
            ((h.app.id, len(h.channels)) for h in hubs),
        )
        yield from _per_app(
            GaugeMetricFamily,
            "overtone_subscriptions",
            "Channel subscriptions on this node",
            ((h.app.id, sum(len(c.subscribers) for c in h.channels.values())) for h in hubs),
        )
        for name, doc, attr in (
            ("overtone_connections_opened", "Connections accepted", "connections_opened"),
            ("overtone_connections_closed", "Connections closed", "connections_closed"),
            ("overtone_messages_received", "Client messages received", "messages_in"),
            ("overtone_messages_sent", "Frames sent to clients", "messages_out"),
            ("overtone_bytes_received", "Bytes of client messages", "bytes_in"),
            ("overtone_bytes_sent", "Bytes of frames sent to clients", "bytes_out"),
        ):
            yield from _per_app(
                CounterMetricFamily, name, doc, ((h.app.id, getattr(h.stats, attr)) for h in hubs)
            )
        yield from _history(hubs, server)
        errors = CounterMetricFamily(
            "overtone_errors", "Pusher errors sent, by code", labels=["app", "code"]
        )
        for hub in hubs:
            for code, count in sorted(hub.stats.errors.items()):
                errors.add_metric([hub.app.id, str(code)], count)
        yield errors
        ctx = server.ctx
        if ctx is not None:
            closes = CounterMetricFamily(
                "overtone_protocol_closes",
                "Connections closed for a protocol violation",
                labels=["code"],
            )
            for code, count in sorted(ctx.protocol_closes.items()):
                closes.add_metric([str(code)], count)
            yield closes
            yield from _latency(ctx.latency)
        broker = server.broker
        state = GaugeMetricFamily(
            "overtone_broker_connected", "1 when the cluster broker is reachable (or unused)"
        )
        state.add_metric([], 1 if broker is None or broker.connected else 0)
        yield state
        dropped = CounterMetricFamily(
            "overtone_broker_dropped", "Cluster envelopes dropped while the broker was away"
        )
        dropped.add_metric([], broker.dropped if broker is not None else 0)
        yield dropped


def _history(hubs: list[Hub], server: Server) -> Iterator[Metric]:
    kept = [h for h in hubs if h.history is not None]
    yield from _per_app(
        GaugeMetricFamily,
        "overtone_history_streams",
        "Channel streams this node follows",
        ((h.app.id, len(h.history)) for h in kept if h.history is not None),
    )
    yield from _per_app(
        GaugeMetricFamily,
        "overtone_history_events",
        "Events held in channel histories on this node",
        ((h.app.id, sum(len(s.entries) for s in h.history)) for h in kept if h.history is not None),
    )
    yield from _per_app(
        CounterMetricFamily,
        "overtone_recoveries",
        "Subscriptions that recovered every missed event",
        ((h.app.id, h.stats.recovered) for h in hubs),
    )
    yield from _per_app(
        CounterMetricFamily,
        "overtone_resyncs",
        "Subscriptions that asked to recover and were told to reload (recovered: false)",
        ((h.app.id, h.stats.resynced) for h in hubs),
    )
    budget = GaugeMetricFamily(
        "overtone_history_bytes", "Bytes of history held on this node (all apps)"
    )
    budget.add_metric([], server.node.history_budget.used)
    yield budget
    cap = GaugeMetricFamily("overtone_history_bytes_max", "Node-wide cap on history bytes")
    cap.add_metric([], server.node.history_budget.max_bytes)
    yield cap


def _per_app(
    family: type[GaugeMetricFamily] | type[CounterMetricFamily],
    name: str,
    doc: str,
    values: Iterable[tuple[str, int]],
) -> Iterator[Metric]:
    metric = family(name, doc, labels=["app"])
    for app_id, value in values:
        metric.add_metric([app_id], value)
    yield metric


def _latency(latency: Latency) -> Iterator[Metric]:
    histogram = HistogramMetricFamily(
        "overtone_http_api_seconds", "HTTP API handling time", labels=["route"]
    )
    for route, counts in sorted(latency.buckets.items()):
        cumulative, buckets = 0, []
        for bound, count in zip((*map(str, LATENCY_BUCKETS), "+Inf"), counts, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        histogram.add_metric([route], buckets, latency.sums[route])
    yield histogram
    requests = CounterMetricFamily(
        "overtone_http_api_requests", "HTTP API requests", labels=["route", "status"]
    )
    for (route, status), count in sorted(latency.statuses.items()):
        requests.add_metric([route, str(status)], count)
    yield requests


class OpsHandler:
    """Answers ``/ready`` and ``/metrics`` (under the server path prefix)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        prefix = server.settings.path
        self.ready_path = f"{prefix}/ready"
        self.metrics_path = f"{prefix}/metrics"
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(OvertoneCollector(server))
        self.registry.register(ProcessCollector(registry=None))

    def handles(self, path: str) -> bool:
        """Whether ``path`` is one of the operations endpoints."""
        return path in (self.ready_path, self.metrics_path)

    def handle(
        self, path: str, target: str, authorization: bytes | None
    ) -> tuple[int, bytes, bytes]:
        """``(status, body, content type)`` for an operations request."""
        if path == self.ready_path:
            status, body = readiness(self.server)
            return status, body, b"application/json"
        token = self.server.settings.metrics_token
        if not metrics_allowed(token, target, authorization):
            return (
                401,
                orjson.dumps({"error": "metrics need a valid bearer token"}),
                (b"application/json"),
            )
        return 200, generate_latest(self.registry), CONTENT_TYPE_LATEST.encode()
