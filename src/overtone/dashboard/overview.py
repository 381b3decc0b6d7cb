"""What the dashboard shows: per-second samples, cluster-wide figures, channel documents.

Pure: the caller passes the clocks, the process figures and the other nodes' reports in.
A :class:`Sampler` is told once a second what this node's counters read; it keeps the rates
of the last five minutes and builds this node's ``load`` report, which the cluster carries
to the other nodes while a dashboard is open anywhere (:mod:`overtone.dashboard.service`).
Cluster-wide rates are this node's plus the other nodes' latest reports.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from overtone.channels.history import event_fields
from overtone.hub import Hub
from overtone.node import Node
from overtone.stats import LATENCY_BUCKETS, Latency

SERIES = 300
"""Samples kept, one a second: five minutes of graphs."""
STALE = 3.0
"""Seconds after which another node's report no longer counts (it is shown ``stale``)."""
RATES = ("messages_in", "messages_out", "bytes_in", "bytes_out", "api_requests")
"""The per-app counters turned into rates (``AppStats`` attribute names)."""
MAX_CHANNELS = 500
"""Channels listed at most in one answer."""


@dataclass(slots=True)
class NodeLoad:
    """Another node's latest report (``received`` is this node's clock)."""

    received: float
    report: dict[str, Any]


@dataclass(slots=True)
class Sampler:
    """Rates of this node's counters, and the last :data:`SERIES` cluster-wide samples."""

    node_id: str
    previous: dict[str, tuple[float, ...]] = field(default_factory=dict)
    previous_at: float | None = None
    previous_cpu: float | None = None
    previous_latency: list[int] = field(default_factory=list)
    own: dict[str, Any] = field(default_factory=dict)
    """This node's latest report: ``{"a": {app: {"c": conns, rate: x}}, "cpu", "rss"}``."""
    api: dict[str, float | None] = field(default_factory=dict)
    samples: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=SERIES))

    def sample(
        self,
        node: Node,
        latency: Latency,
        wall: float,
        now: float,
        cpu_seconds: float,
        rss: int,
        others: Mapping[str, NodeLoad],
    ) -> dict[str, Any]:
        """Read the counters at loop time ``now`` (wall-clock ``wall``); the new sample."""
        elapsed = now - self.previous_at if self.previous_at is not None else 0.0
        hubs = [node.hub(app) for app in node.registry]
        apps: dict[str, dict[str, float]] = {}
        for hub in hubs:
            counts = tuple(float(getattr(hub.stats, name)) for name in RATES)
            before = self.previous.get(hub.app.id, counts)
            rates = {
                name: (now_count - then) / elapsed if elapsed > 0 else 0.0
                for name, now_count, then in zip(RATES, counts, before, strict=True)
            }
            self.previous[hub.app.id] = counts
            apps[hub.app.id] = {"c": len(hub.sessions), **rates}
        cpu = 0.0
        if self.previous_cpu is not None and elapsed > 0:
            cpu = max(0.0, (cpu_seconds - self.previous_cpu) / elapsed * 100)
        self.previous_cpu = cpu_seconds
        self.api = self._api(latency, elapsed)
        self.previous_at = now
        self.own = {"a": apps, "cpu": round(cpu, 1), "rss": rss}
        fresh = [load.report for load in others.values() if now - load.received <= STALE]
        sample: dict[str, Any] = {"t": round(wall, 3), "apps": {}}
        for hub in hubs:
            totals = {name: apps[hub.app.id][name] for name in RATES}
            for report in fresh:
                theirs = report.get("a", {}).get(hub.app.id)
                if isinstance(theirs, dict):
                    for name in RATES:
                        value = theirs.get(name)
                        if isinstance(value, int | float):
                            totals[name] += value
            sample["apps"][hub.app.id] = {
                "connections": hub.connection_count(),
                **{name: round(value, 1) for name, value in totals.items()},
            }
        self.samples.append(sample)
        return sample

    def _api(self, latency: Latency, elapsed: float) -> dict[str, float | None]:
        """Requests per second and p50/p99 (upper bucket bounds, ms) over the last sample."""
        counts = [0] * (len(LATENCY_BUCKETS) + 1)
        for route_counts in latency.buckets.values():
            for i, count in enumerate(route_counts):
                counts[i] += count
        before = self.previous_latency or counts
        delta = [now_count - then for now_count, then in zip(counts, before, strict=True)]
        self.previous_latency = counts
        total = sum(delta)
        return {
            "requests_per_s": round(total / elapsed, 1) if elapsed > 0 else 0.0,
            "p50_ms": _percentile(delta, total, 0.50),
            "p99_ms": _percentile(delta, total, 0.99),
        }

    def series(self) -> dict[str, Any]:
        """The samples as columns: ``{"t": [...], "apps": {id: {figure: [...]}}}``."""
        columns: dict[str, Any] = {"t": [s["t"] for s in self.samples], "apps": {}}
        apps: dict[str, dict[str, list[float | None]]] = columns["apps"]
        for i, sample in enumerate(self.samples):
            for app_id, figures in sample["apps"].items():
                column = apps.setdefault(app_id, {})
                for name, value in figures.items():
                    column.setdefault(name, [None] * i).append(value)
            for column in apps.values():
                for values in column.values():
                    if len(values) < i + 1:
                        values.append(None)
        return columns


def _percentile(counts: list[int], total: int, q: float) -> float | None:
    """The upper bound (ms) of the bucket holding quantile ``q``; ``None`` without data."""
    if total <= 0:
        return None
    wanted = q * total
    seen = 0
    for bound, count in zip((*LATENCY_BUCKETS, float("inf")), counts, strict=True):
        seen += count
        if seen >= wanted:
            return round(bound * 1000, 3) if bound != float("inf") else None
    return None


def app_figures(hub: Hub) -> dict[str, Any]:
    """Cluster-wide counts of one app (channels, subscriptions, presence users)."""
    names = hub.channel_names()
    local_subscriptions = sum(len(c.subscribers) for c in hub.channels.values())
    presence = [name for name in names if name.startswith("presence-")]
    figures: dict[str, Any] = {
        "id": hub.app.id,
        "key": hub.app.key,
        "connections": hub.connection_count(),
        "local_connections": len(hub.sessions),
        "channels": len(names),
        "subscriptions": local_subscriptions + sum(hub.remote.channels.values()),
        "presence_users": sum(hub.user_count(name) for name in presence),
        "errors": {str(code): count for code, count in sorted(hub.stats.errors.items())},
        "history": None,
        "settings": {
            "max_connections": hub.app.max_connections,
            "subscription_count": hub.app.subscription_count,
            "authorized_connections": hub.app.authorized_connections,
            "authorization_timeout": hub.app.authorization_timeout,
        },
        "authorized": hub.authorized_count() if hub.app.authorized_connections else None,
    }
    if hub.history is not None:
        figures["history"] = {
            "streams": len(hub.history),
            "events": sum(len(stream.entries) for stream in hub.history),
        }
    return figures


def nodes_table(
    node_id: str,
    own: Mapping[str, Any],
    hubs: Iterable[Hub],
    last_seen: Mapping[str, float],
    others: Mapping[str, NodeLoad],
    now: float,
) -> list[dict[str, Any]]:
    """One row per live node: this one first, then the others by id."""
    hubs = list(hubs)
    rows = [_node_row(node_id, True, own, 0.0, sum(len(h.sessions) for h in hubs))]
    for other in sorted(last_seen):
        load = others.get(other)
        connections = sum(
            share.connections for hub in hubs if (share := hub.remote.shares.get(other)) is not None
        )
        report = load.report if load is not None and now - load.received <= STALE else {}
        row = _node_row(other, False, report, round(now - last_seen[other], 1), connections)
        if load is not None and not report:
            row["state"] = "stale"
        rows.append(row)
    return rows


def _node_row(
    node_id: str, me: bool, report: Mapping[str, Any], last_seen: float, connections: int
) -> dict[str, Any]:
    apps = report.get("a", {})
    out = sum(
        figures.get("messages_out", 0) for figures in apps.values() if isinstance(figures, dict)
    )
    return {
        "id": node_id,
        "self": me,
        "state": "up",
        "last_seen": last_seen,
        "connections": connections,
        "cpu": report.get("cpu"),
        "rss": report.get("rss"),
        "messages_out": round(out, 1) if apps else None,
        "transports": report.get("t"),
    }


def channel_list(hub: Hub, needle: str) -> dict[str, Any]:
    """Channels of an app whose name contains ``needle`` (cluster-wide), by name."""
    names = sorted(name for name in hub.channel_names() if needle in name)
    listed = [
        {
            "name": name,
            "subscriptions": hub.subscription_count(name),
            "users": hub.user_count(name) if name.startswith("presence-") else None,
        }
        for name in names[:MAX_CHANNELS]
    ]
    return {"channels": listed, "total": len(names), "truncated": len(names) > MAX_CHANNELS}


def channel_detail(hub: Hub, name: str, now: float) -> dict[str, Any]:
    """Everything the dashboard shows about one channel."""
    channel = hub.channels.get(name)
    document: dict[str, Any] = {
        "name": name,
        "occupied": hub.subscription_count(name) > 0,
        "subscriptions": hub.subscription_count(name),
        "local_subscribers": sorted(channel.subscribers) if channel is not None else [],
        "members": None,
        "cache": hub.cached_event(name, now),
        "history": None,
    }
    if name.startswith("presence-"):
        document["members"] = [
            {"id": user_id, "info": info} for user_id, info in hub.presence_members(name).items()
        ]
    history = hub.history
    if history is not None:
        if name in history.streams:
            position = history.position(name, now)
            document["history"] = {
                "followed": True,
                **position.to_wire(),
                "events": [event_fields(payload) for _, payload in history.held(name, now)],
            }
        else:
            document["history"] = {"followed": False, "events": []}
    return document
