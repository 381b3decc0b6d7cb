"""Prometheus ``/metrics``: the plain counters of every hub, read at scrape time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from overtone.cluster.broker import Broker
from overtone.hub import Hub
from overtone.node import Node
from overtone.stats import LATENCY_BUCKETS, Latency


class Observed(Protocol):
    """What the operations endpoints read of the running server."""

    @property
    def node(self) -> Node:
        """Every app of this process."""

    @property
    def broker(self) -> Broker | None:
        """The cluster broker, ``None`` on a single node."""

    @property
    def draining(self) -> bool:
        """Whether the server is not (yet, or any more) taking new clients."""

    @property
    def protocol_closes(self) -> Counter[int]:
        """Connections closed for a protocol violation, by close code."""

    @property
    def latency(self) -> Latency:
        """HTTP API handling times."""

    @property
    def transports(self) -> dict[str, int]:
        """Open client connections on this node by transport."""


class OvertoneCollector(Collector):
    """Reads the hubs' counters when Prometheus scrapes."""

    def __init__(self, server: Observed) -> None:
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
            "overtone_authorized_connections",
            "Authorized connections in the whole cluster (apps that require authorization)",
            ((h.app.id, h.authorized_count()) for h in hubs if h.app.authorized_connections),
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
        by_transport = GaugeMetricFamily(
            "overtone_transport_connections",
            "Open client connections on this node, by transport (ws, xhr_streaming, xhr_polling)",
            labels=["transport"],
        )
        for name, count in sorted(server.transports.items()):
            by_transport.add_metric([name], count)
        yield by_transport
        yield from _history(hubs, server)
        errors = CounterMetricFamily(
            "overtone_errors", "Pusher errors sent, by code", labels=["app", "code"]
        )
        for hub in hubs:
            for code, count in sorted(hub.stats.errors.items()):
                errors.add_metric([hub.app.id, str(code)], count)
        yield errors
        closes = CounterMetricFamily(
            "overtone_protocol_closes",
            "Connections closed for a protocol violation",
            labels=["code"],
        )
        for code, count in sorted(server.protocol_closes.items()):
            closes.add_metric([str(code)], count)
        yield closes
        yield from _latency(server.latency)
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


def _history(hubs: list[Hub], server: Observed) -> Iterator[Metric]:
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
