"""``overtone top``: the dashboard's overview in a terminal, for operators on SSH.

With a dashboard password (``--password`` or ``OVERTONE_DASHBOARD_PASSWORD``, from the
environment or the ``.env``) it polls ``{url}/dashboard/api/overview`` (Basic auth, user
``overtone``): cluster-wide numbers, rates, the nodes and a sparkline of the last minute. Without
one, or when the server's dashboard is off (404), it scrapes ``{url}/metrics`` (bearer
``OVERTONE_METRICS_TOKEN`` when set) and computes rates from the counters of two scrapes.

The frame is redrawn in place every ``--interval`` seconds; ``--once`` prints one frame (with
``/metrics``, after two scrapes ``--interval`` apart) and exits.

Exit status: 0 after ``--once`` or Ctrl-C; 1 when the server cannot be reached or refuses
(wrong password, too many failed logins, missing metrics token, unknown ``--app``); 2 for a bad
flag or ``.env``.

Formatting (:func:`render`, :func:`render_metrics`, :func:`sparkline`) and the metrics
arithmetic (:func:`parse_metrics`, :func:`metrics_view`) are pure; only :class:`Poller` and
:func:`run` do I/O.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from overtone.cli.common import add_env_file
from overtone.config import ConfigError, load_settings, read_environment

USER = "overtone"
SPARKS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 30
"""Characters of a sparkline; each shows two seconds of the last minute."""
SPARK_SECONDS = 60
CLEAR = "\x1b[H\x1b[2J"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# Rows of an app: label, the app field (or rate), the series key of its sparkline, the unit.
_APP_RATES = (
    ("messages in", "messages_in", "messages_in", "/s"),
    ("messages out", "messages_out", "messages_out", "/s"),
    ("bytes in", "bytes_in", "bytes_in", "B/s"),
    ("bytes out", "bytes_out", "bytes_out", "B/s"),
    ("API requests", "api_requests", "api_requests", "/s"),
)


class TopError(Exception):
    """Why ``overtone top`` cannot show anything; the message says what to do."""


# Formatting -------------------------------------------------------------------------------


def sparkline(values: Sequence[float | None], width: int = SPARK_WIDTH) -> str:
    """``values`` (oldest first) as at most ``width`` bars from 0 to their maximum.

    Consecutive values share a bar when there are more values than ``width`` (the bar shows
    their maximum, so a short peak stays visible); a missing value is a space.
    """
    if not values or width < 1:
        return ""
    per_bar = max(1, math.ceil(len(values) / width))
    groups = [values[i : i + per_bar] for i in range(0, len(values), per_bar)]
    peaks = [max((v for v in group if v is not None), default=None) for group in groups]
    top = max((p for p in peaks if p is not None), default=0.0)
    bars = []
    for peak in peaks:
        if peak is None:
            bars.append(" ")
        elif top <= 0:
            bars.append(SPARKS[0])
        else:
            level = round(max(0.0, peak) / top * (len(SPARKS) - 1))
            bars.append(SPARKS[level])
    return "".join(bars)


def count(value: Any) -> str:
    """An integer with thousands separators, ``-`` when unknown."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    return f"{round(value):,}"


def rate(value: Any) -> str:
    """A per-second figure: one decimal below 100, whole above."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    return f"{value:,.1f}" if abs(value) < 100 else f"{round(value):,}"


def size(value: Any) -> str:
    """Bytes in B, KiB, MiB or GiB."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    amount = float(value)
    for unit in ("B", "KiB", "MiB"):
        if abs(amount) < 1024:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GiB"


def millis(value: Any) -> str:
    """Milliseconds with two significant decimals for small values."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    return f"{value:.2f} ms" if value < 10 else f"{value:.0f} ms"


def duration(seconds: Any) -> str:
    """``3d 4h``, ``2h 5m``, ``4m 10s`` or ``12s``."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "-"
    whole = int(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def _clock(epoch: Any) -> str:
    if not isinstance(epoch, int | float) or isinstance(epoch, bool):
        return "-"
    return time.strftime("%H:%M:%S", time.localtime(epoch))


def _row(label: str, value: str, spark: str = "") -> str:
    line = f"  {label:<15} {value:<30}"
    return f"{line} {spark}".rstrip() if spark else line.rstrip()


def _by_code(errors: Any) -> str:
    if not isinstance(errors, Mapping) or not errors:
        return "none"
    items = sorted(errors.items(), key=lambda item: str(item[0]))
    return "  ".join(f"{code}: {count(n)}" for code, n in items)


def _flow(value: Any, unit: str) -> str:
    return f"{size(value)}/s" if unit == "B/s" else f"{rate(value)}/s"


def _last_minute(series: Any, app_id: str, key: str, seconds: int = SPARK_SECONDS) -> str:
    if not isinstance(series, Mapping):
        return ""
    apps = series.get("apps")
    values = apps.get(app_id, {}).get(key) if isinstance(apps, Mapping) else None
    if not isinstance(values, list) or not values:
        return ""
    numbers = [v if isinstance(v, int | float) else None for v in values[-seconds:]]
    return sparkline(numbers)


def _app_lines(app: Mapping[str, Any], series: Any) -> list[str]:
    app_id = str(app.get("id", "?"))
    lines = [f"app {app_id}  key {app.get('key', '-')}"]
    connections = (
        f"{count(app.get('connections'))} cluster / {count(app.get('local_connections'))} local"
    )
    lines.append(_row("connections", connections, _last_minute(series, app_id, "connections")))
    lines.append(_row("channels", count(app.get("channels"))))
    lines.append(_row("subscriptions", count(app.get("subscriptions"))))
    lines.append(_row("presence users", count(app.get("presence_users"))))
    rates = app.get("rates")
    rates = rates if isinstance(rates, Mapping) else {}
    for label, key, series_key, unit in _APP_RATES:
        spark = _last_minute(series, app_id, series_key)
        lines.append(_row(label, _flow(rates.get(key), unit), spark))
    lines.append(_row("errors", _by_code(app.get("errors"))))
    history = app.get("history")
    if isinstance(history, Mapping):
        kept = f"{count(history.get('streams'))} streams, {count(history.get('events'))} events"
        lines.append(_row("history", kept))
    return lines


def _node_lines(nodes: Any) -> list[str]:
    if not isinstance(nodes, list) or not nodes:
        return []
    rows = [node for node in nodes if isinstance(node, Mapping)]
    names = [f"{node.get('id', '?')}{' *' if node.get('self') else ''}" for node in rows]
    wide = max(12, *map(len, names))
    head = (
        f"  {'node':<{wide}} {'state':<6} {'seen':>6} {'conns':>9} {'cpu':>7} {'rss':>10} "
        f"{'out/s':>9}"
    )
    lines = ["nodes", head]
    for name, node in zip(names, rows, strict=True):
        seen = node.get("last_seen")
        seen_text = f"{seen:.1f}s" if isinstance(seen, int | float) else "-"
        cpu = node.get("cpu")
        cpu_text = f"{cpu:.1f}%" if isinstance(cpu, int | float) else "-"
        lines.append(
            f"  {name:<{wide}} {node.get('state', '-')!s:<6} {seen_text:>6} "
            f"{count(node.get('connections')):>9} {cpu_text:>7} {size(node.get('rss')):>10} "
            f"{rate(node.get('messages_out')):>9}"
        )
    return lines


def render(overview: Mapping[str, Any], app: str | None = None, source: str = "") -> str:
    """One frame of the dashboard's overview document (``docs/dashboard.md``).

    ``app`` keeps only that app; ``source`` (the URL polled) goes in the title.
    """
    nodes = overview.get("nodes")
    cluster = (
        f"cluster of {len(nodes)} node{'s' if len(nodes) != 1 else ''}"
        if overview.get("cluster") and isinstance(nodes, list)
        else "single node"
    )
    lines = [
        f"overtone {overview.get('version', '?')}  node {overview.get('node', '?')}  "
        f"up {duration(overview.get('uptime'))}  {cluster}  {_clock(overview.get('time'))}",
    ]
    if source:
        lines.append(f"{source}  (sparklines: last {SPARK_SECONDS} s)")
    apps = [a for a in overview.get("apps") or () if isinstance(a, Mapping)]
    if app is not None:
        apps = [a for a in apps if str(a.get("id")) == app]
        if not apps:
            lines += ["", f"no app {app} on this server"]
    for entry in apps:
        lines.append("")
        lines += _app_lines(entry, overview.get("series"))
    api = overview.get("api")
    if isinstance(api, Mapping):
        lines += [
            "",
            f"API       {rate(api.get('requests_per_s'))} req/s  p50 {millis(api.get('p50_ms'))}"
            f"  p99 {millis(api.get('p99_ms'))}  by status: {_by_code(api.get('by_status'))}",
        ]
    webhooks = overview.get("webhooks")
    if isinstance(webhooks, Mapping):
        lines.append(
            f"webhooks  queued {count(webhooks.get('queued'))}  sent {count(webhooks.get('sent'))}"
            f"  failed {count(webhooks.get('failed'))}  dropped {count(webhooks.get('dropped'))}"
        )
    elif "webhooks" in overview:
        lines.append("webhooks  none configured")
    node_lines = _node_lines(nodes)
    if node_lines:
        lines += ["", *node_lines]
    return "\n".join(lines) + "\n"


# The /metrics fallback ----------------------------------------------------------------------

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


def render_metrics(view: MetricsView, app: str | None = None, source: str = "") -> str:
    """One frame from ``/metrics``: this node's figures and rates since the previous scrape."""
    now = view.current
    process = now.process
    broker = process.get("broker_connected")
    broker_text = "" if broker is None else ("  broker up" if broker else "  broker DOWN")
    lines = [
        f"overtone /metrics (this node)  rates over {view.seconds:.1f} s{broker_text}",
    ]
    if source:
        lines.append(source)
    lines.append("dashboard figures (cluster-wide, graphs, nodes) need OVERTONE_DASHBOARD_PASSWORD")
    apps = sorted(now.apps)
    if not apps:
        lines += ["", "no app in /metrics yet (an app appears with its first connection or call)"]
    elif app is not None:
        apps = [a for a in apps if a == app]
        if not apps:
            lines += ["", f"no app {app} on this server"]
    for app_id in apps:
        values = now.apps[app_id]
        rates = view.rates.get(app_id, {})
        recent = view.recent.get(app_id, {})
        connections = (
            f"{count(values.get('connections'))} cluster / "
            f"{count(values.get('local_connections'))} local"
        )
        lines += ["", f"app {app_id}", _row("connections", connections)]
        lines.append(_row("channels", count(values.get("channels"))))
        lines.append(_row("subscriptions", count(values.get("subscriptions"))))
        for label, key, _, unit in _APP_RATES[:4]:
            lines.append(_row(label, _flow(rates.get(key), unit), sparkline(recent.get(key, ()))))
        churn = f"{rate(rates.get('opened'))}/s opened, {rate(rates.get('closed'))}/s closed"
        lines.append(_row("connects", churn))
        lines.append(_row("errors", _by_code(now.errors.get(app_id))))
        if "history_streams" in values:
            kept = (
                f"{count(values.get('history_streams'))} streams, "
                f"{count(values.get('history_events'))} events"
            )
            lines.append(_row("history", kept))
    statuses = {code: n for code, n in now.statuses.items() if n}
    lines += [
        "",
        f"API       {rate(view.api_rate)} req/s  p50 {millis(view.p50_ms)}  "
        f"p99 {millis(view.p99_ms)}  by status: {_by_code(statuses)}",
    ]
    fds = f"{count(process.get('open_fds'))}/{count(process.get('max_fds'))}"
    cpu = "-" if view.cpu_percent is None else f"{view.cpu_percent:.1f}%"
    lines.append(f"process   cpu {cpu}  rss {size(process.get('rss'))}  open files {fds}")
    return "\n".join(lines) + "\n"


# I/O ---------------------------------------------------------------------------------------


@dataclass
class Target:
    """Where and how to poll."""

    url: str
    password: str | None
    token: str | None
    verify: bool
    app: str | None


class Poller:
    """Fetches the overview (or scrapes ``/metrics``) and produces frames."""

    def __init__(self, target: Target, http: httpx.Client) -> None:
        self.target = target
        self.http = http
        self.use_dashboard = target.password is not None
        self.notice = ""
        self.previous: Scrape | None = None
        self.recent: dict[str, dict[str, deque[float | None]]] = {}

    @property
    def overview_url(self) -> str:
        return f"{self.target.url}/dashboard/api/overview"

    @property
    def metrics_url(self) -> str:
        return f"{self.target.url}/metrics"

    def _get(self, url: str, **options: Any) -> httpx.Response:
        try:
            return self.http.get(url, **options)
        except httpx.ConnectError as exc:
            raise TopError(f"cannot reach {url}: {exc or 'connection refused'}") from None
        except httpx.TimeoutException:
            raise TopError(f"{url} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise TopError(f"{url}: {exc}") from None

    def overview(self) -> dict[str, Any] | None:
        """The overview document; ``None`` when the dashboard is off (switches to metrics)."""
        assert self.target.password is not None
        answer = self._get(self.overview_url, auth=(USER, self.target.password))
        if answer.status_code == 404:
            self.use_dashboard = False
            self.notice = (
                "the dashboard is off on this server (404; it needs OVERTONE_DASHBOARD_PASSWORD "
                "where overtone runs): showing /metrics instead"
            )
            return None
        if answer.status_code == 401:
            raise TopError(
                f"{self.overview_url}: 401, wrong dashboard password (user 'overtone'; "
                "--password or OVERTONE_DASHBOARD_PASSWORD must match the server's)"
            )
        if answer.status_code == 429:
            wait = answer.headers.get("retry-after", "60")
            raise TopError(
                f"{self.overview_url}: 429, too many failed logins from this address; "
                f"retry in {wait} s with the right password"
            )
        if answer.status_code != 200:
            raise TopError(f"{self.overview_url}: HTTP {answer.status_code}")
        try:
            document = answer.json()
        except ValueError:
            raise TopError(f"{self.overview_url} did not answer JSON (is it overtone?)") from None
        if not isinstance(document, dict):
            raise TopError(f"{self.overview_url}: unexpected answer")
        return document

    def scrape(self) -> Scrape:
        """One ``/metrics`` scrape."""
        headers = {"Authorization": f"Bearer {self.target.token}"} if self.target.token else {}
        answer = self._get(self.metrics_url, headers=headers)
        if answer.status_code == 401:
            have = "is wrong" if self.target.token else "is not set here"
            raise TopError(
                f"{self.metrics_url}: 401, the server needs its metrics token "
                f"(OVERTONE_METRICS_TOKEN {have})"
            )
        if answer.status_code == 404:
            raise TopError(
                f"{self.metrics_url}: 404; not an overtone address, or a proxy that does not "
                "pass /metrics: run `overtone top` on the server itself (or set "
                "OVERTONE_DASHBOARD_PASSWORD to use the dashboard)"
            )
        if answer.status_code != 200:
            raise TopError(f"{self.metrics_url}: HTTP {answer.status_code}")
        return parse_metrics(answer.text, time.monotonic())

    def _remember(self, view: MetricsView) -> None:
        samples = max(1, round(SPARK_SECONDS / max(view.seconds, 0.1)))
        for app, rates in view.rates.items():
            kept = self.recent.setdefault(app, {})
            for key, value in rates.items():
                kept.setdefault(key, deque(maxlen=samples)).append(value)
        view.recent = {
            app: {k: list(v) for k, v in keys.items()} for app, keys in self.recent.items()
        }

    def frame(self, wait: Callable[[float], None], interval: float) -> str:
        """The next frame; with metrics, the first call scrapes twice ``interval`` apart."""
        if self.use_dashboard:
            document = self.overview()
            if document is not None:
                self._check_app(str(a.get("id")) for a in document.get("apps") or ())
                return render(document, self.target.app, self.overview_url)
        if self.previous is None:
            self.previous = self.scrape()
            self._check_app(self.previous.apps)
            wait(interval)
        current = self.scrape()
        view = metrics_view(self.previous, current)
        self.previous = current
        self._remember(view)
        text = render_metrics(view, self.target.app, self.metrics_url)
        return f"{self.notice}\n{text}" if self.notice else text

    def _check_app(self, apps: Iterable[str]) -> None:
        known = sorted(apps)
        if self.target.app is not None and known and self.target.app not in known:
            raise TopError(f"no app {self.target.app} on this server (apps: {', '.join(known)})")


def _interval(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 0.1 <= seconds <= 3600:
        raise argparse.ArgumentTypeError(f"{seconds:g} must be between 0.1 and 3600 seconds")
    return seconds


def register(commands: Any) -> None:
    """Add ``top`` to the sub-commands."""
    parser = commands.add_parser(
        "top",
        help="live overview in the terminal (the dashboard's, or /metrics)",
        description=(
            "Live overview of a running server in the terminal. Exit status: 0 after --once "
            "or Ctrl-C, 1 when the server cannot be reached or refuses, 2 for bad flags."
        ),
    )
    add_env_file(parser)
    parser.add_argument(
        "--url",
        help="the server's base address, e.g. http://127.0.0.1:8080 or https://ws.example.com "
        "(default: REVERB_SERVER_HOST/PORT/PATH as `overtone start` reads them)",
    )
    parser.add_argument(
        "--password",
        help="dashboard password (default OVERTONE_DASHBOARD_PASSWORD); without one, /metrics",
    )
    parser.add_argument(
        "--interval", type=_interval, default=1.0, help="seconds between frames (1)"
    )
    parser.add_argument("--once", action="store_true", help="print one frame and exit")
    parser.add_argument("--app", help="show only this app id")
    parser.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    parser.set_defaults(handler=run)


def target(args: argparse.Namespace, environ: Mapping[str, str]) -> Target:
    """The URL and credentials from the flags, the environment and the ``.env``."""
    try:
        env = read_environment(environ, args.env_file)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    verify = not args.insecure
    url = args.url
    if not url:
        try:
            settings = load_settings(env)
        except ConfigError as exc:
            raise ValueError(f"configuration error: {exc}") from None
        host = settings.host
        if host in ("", "0.0.0.0", "*"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        url = f"{settings.scheme}://{host}:{settings.port}{settings.path}"
        verify = False  # our own server: its certificate names the public host, not loopback
    elif "://" not in url:
        url = f"http://{url}"
    password = args.password or (env.get("OVERTONE_DASHBOARD_PASSWORD") or "").strip() or None
    token = (env.get("OVERTONE_METRICS_TOKEN") or "").strip() or None
    return Target(url.rstrip("/"), password, token, verify, args.app)


def run(args: argparse.Namespace) -> int:
    """Show frames until Ctrl-C (or one with ``--once``); return the exit status."""
    try:
        where = target(args, os.environ)
    except ValueError as exc:
        print(f"overtone top: {exc}", file=sys.stderr)
        return EXIT_USAGE
    timeout = httpx.Timeout(max(2.0, min(args.interval, 10.0)), connect=3.0)
    try:
        with httpx.Client(timeout=timeout, verify=where.verify) as http:
            return _loop(Poller(where, http), args.interval, args.once)
    except KeyboardInterrupt:
        return EXIT_OK


def _loop(poller: Poller, interval: float, once: bool) -> int:
    try:
        text = poller.frame(time.sleep, interval)
    except TopError as exc:
        print(f"overtone top: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if poller.notice:
        print(f"overtone top: {poller.notice}", file=sys.stderr)
    if once:
        sys.stdout.write(text)
        return EXIT_OK
    while True:
        sys.stdout.write(CLEAR + text)
        sys.stdout.flush()
        time.sleep(interval)
        try:
            text = poller.frame(time.sleep, interval)
        except TopError as exc:  # a restart or a blip: keep polling, say so
            text = f"overtone top: {exc} (retrying every {interval:g} s)\n"
