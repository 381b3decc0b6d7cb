"""The frames of ``overtone top``: the dashboard's overview or a ``/metrics`` view drawn as
text (sparklines, counts, rates). Pure: a frame is a function of the documents."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from overtone.cli.top_metrics import MetricsView

SPARKS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 30
"""Characters of a sparkline; each shows two seconds of the last minute."""
SPARK_SECONDS = 60

# Rows of an app: label, the app field (or rate), the series key of its sparkline, the unit.
_APP_RATES = (
    ("messages in", "messages_in", "messages_in", "/s"),
    ("messages out", "messages_out", "messages_out", "/s"),
    ("bytes in", "bytes_in", "bytes_in", "B/s"),
    ("bytes out", "bytes_out", "bytes_out", "B/s"),
    ("API requests", "api_requests", "api_requests", "/s"),
)


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
