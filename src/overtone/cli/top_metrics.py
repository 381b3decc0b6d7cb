"""The data side of ``overtone top`` without a dashboard: ``/metrics`` scrapes parsed, and
rates and quantiles computed from two of them. Pure."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families


class TopError(Exception):
    """Why ``overtone top`` cannot show anything; the message says what to do."""


_GAUGES = {
    "overtone_connections": "local_connections",
    "overtone_cluster_connections": "connections",
    "overtone_channels": "channels",
    "overtone_subscriptions": "subscriptions",
    "overtone_history_streams": "history_streams",
    "overtone_history_events": "history_events",
}
_COUNTERS = {
    "overtone_messages_received_total": "messages_in",
    "overtone_messages_sent_total": "messages_out",
    "overtone_bytes_received_total": "bytes_in",
    "overtone_bytes_sent_total": "bytes_out",
    "overtone_connections_opened_total": "opened",
    "overtone_connections_closed_total": "closed",
}
_PROCESS = {
    "process_resident_memory_bytes": "rss",
    "process_cpu_seconds_total": "cpu_seconds",
    "process_open_fds": "open_fds",
    "process_max_fds": "max_fds",
    "process_start_time_seconds": "start_time",
    "overtone_broker_connected": "broker_connected",
}


@dataclass
class Scrape:
    """The figures of one ``/metrics`` answer that ``overtone top`` shows."""

    at: float
    """When it was taken (``time.monotonic()``), for rates."""
    apps: dict[str, dict[str, float]] = field(default_factory=dict)
    errors: dict[str, dict[str, float]] = field(default_factory=dict)
    statuses: dict[str, float] = field(default_factory=dict)
    buckets: dict[float, float] = field(default_factory=dict)
    """Cumulative HTTP API latency buckets (upper bound in seconds -> count), all routes."""
    process: dict[str, float] = field(default_factory=dict)


def parse_metrics(text: str, at: float) -> Scrape:
    """The per-app gauges and counters, errors, API latency and process figures of ``text``."""
    scrape = Scrape(at)
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError as exc:
        raise TopError(f"/metrics is not Prometheus text: {exc}") from None
    for family in families:
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, float(sample.value)
            app = labels.get("app")
            if app is not None and name in _GAUGES:
                scrape.apps.setdefault(app, {})[_GAUGES[name]] = value
            elif app is not None and name in _COUNTERS:
                scrape.apps.setdefault(app, {})[_COUNTERS[name]] = value
            elif app is not None and name == "overtone_errors_total":
                codes = scrape.errors.setdefault(app, {})
                codes[labels.get("code", "?")] = value
            elif name == "overtone_http_api_requests_total":
                status = labels.get("status", "?")
                scrape.statuses[status] = scrape.statuses.get(status, 0.0) + value
            elif name == "overtone_http_api_seconds_bucket":
                bound = float(labels.get("le", "+Inf"))
                scrape.buckets[bound] = scrape.buckets.get(bound, 0.0) + value
            elif name in _PROCESS:
                scrape.process[_PROCESS[name]] = value
    return scrape


def _delta(now: float | None, before: float | None, seconds: float) -> float | None:
    """A counter's rate; ``None`` when unknown or reset (the server restarted)."""
    if now is None or before is None or seconds <= 0 or now < before:
        return None
    return (now - before) / seconds


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The ``q`` quantile of cumulative histogram buckets, interpolated as Prometheus does."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    total = buckets[bounds[-1]]
    wanted = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        cumulative = buckets[bound]
        if cumulative >= wanted:
            if math.isinf(bound):
                return lower
            inside = cumulative - below
            fraction = (wanted - below) / inside if inside > 0 else 1.0
            return lower + (bound - lower) * fraction
        lower, below = bound, cumulative
    return lower


@dataclass
class MetricsView:
    """What the ``/metrics`` frame shows: the latest scrape and rates since the previous."""

    current: Scrape
    seconds: float
    rates: dict[str, dict[str, float | None]]
    api_rate: float | None
    p50_ms: float | None
    p99_ms: float | None
    cpu_percent: float | None
    recent: Mapping[str, Mapping[str, Sequence[float | None]]] = field(default_factory=dict)
    """Rates of earlier polls per app and key (oldest first), for the sparklines."""


def metrics_view(previous: Scrape, current: Scrape) -> MetricsView:
    """Rates between two scrapes: per-app counters, API requests and latency, CPU."""
    seconds = current.at - previous.at
    rates: dict[str, dict[str, float | None]] = {}
    for app, values in current.apps.items():
        before = previous.apps.get(app, {})
        rates[app] = {
            key: _delta(values.get(key), before.get(key), seconds) for key in _COUNTERS.values()
        }
    api_now = sum(current.statuses.values())
    api_rate = _delta(api_now, sum(previous.statuses.values()), seconds)
    window = {
        bound: current.buckets[bound] - previous.buckets.get(bound, 0.0)
        for bound in current.buckets
    }
    reset = any(v < 0 for v in window.values())
    p50 = None if reset else quantile(0.5, window)
    p99 = None if reset else quantile(0.99, window)
    cpu = _delta(current.process.get("cpu_seconds"), previous.process.get("cpu_seconds"), seconds)
    return MetricsView(
        current=current,
        seconds=seconds,
        rates=rates,
        api_rate=api_rate,
        p50_ms=None if p50 is None else p50 * 1000,
        p99_ms=None if p99 is None else p99 * 1000,
        cpu_percent=None if cpu is None else cpu * 100,
    )
