"""Formats the runner's results: one table per connection count, medians over repeats."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Result = dict[str, Any]
Runs = dict[str, list[Result]]  # server name -> one result per repeat
SERVERS = ("overtone", "reference")
PHASES = ("connect", "fanout", "latency", "api", "hold", "connect_py", "fanout_py", "api_py")


def dig(result: Result | None, *path: str) -> Any:
    value: Any = result
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def number(value: Any, digits: int = 0) -> str:
    return f"{value:,.{digits}f}".replace(",", " ") if is_num(value) else "-"


def noisy(run: Result | None, phase: str) -> bool:
    """Whether other processes took more than 10 % of a core during this phase."""
    other, wall = dig(run, phase, "other_cpu"), dig(run, phase, "wall")
    return is_num(other) and is_num(wall) and other > 0.1 * max(0.5, wall)


def pick(runs: list[Result], phase: str, figure: str) -> tuple[Any, Result | None]:
    """The median of a figure over the repeats not disturbed by other processes (over all
    repeats when every one was disturbed), and the run it came from."""
    found = [(dig(run, phase, figure), run) for run in runs]
    found = [pair for pair in found if is_num(pair[0])]
    found = [pair for pair in found if not noisy(pair[1], phase)] or found
    if not found:
        return None, runs[0] if runs else None
    found.sort(key=lambda pair: float(pair[0]))
    return found[(len(found) - 1) // 2]


def cpu(result: Result | None, phase: str) -> str:
    figures = dig(result, phase)
    if not isinstance(figures, dict) or "wall" not in figures:
        return "-"
    return f"{figures['client_cpu']:.2f}/{figures['server_cpu']:.2f}/{figures['wall']:.2f}"


def ratio(a: Any, b: Any) -> str:
    return f"{a / b:.2f}" if is_num(a) and is_num(b) and b else "-"


# (label, phase, figure, digits, target check on (overtone, reference), target text)
Row = tuple[str, str, str, int, Callable[[float, float | None], bool] | None, str]
ROWS: list[Row] = [
    ("connect+subscribe /s", "connect", "per_second", 0, lambda o, r: o >= 8000, ">= 8000"),
    ("  server CPU us per connection", "connect", "server_us_per_op", 1, None, ""),
    ("server RSS per idle conn KB", "rss", "kb_per_conn", 2, lambda o, r: o <= 4.0, "<= 4 KB"),
    (
        "fan-out deliveries /s",
        "fanout",
        "per_second",
        0,
        lambda o, r: r is not None and o >= 0.9 * r,
        ">= 0.9x ref",
    ),
    ("  server CPU us per delivery", "fanout", "server_us_per_op", 2, None, ""),
    ("latency p50 ms (100 subs, 20/s)", "latency", "p50_ms", 3, None, ""),
    ("latency p99 ms (100 subs, 20/s)", "latency", "p99_ms", 3, lambda o, r: o <= 2.5, "<= 2.5"),
    (
        "signed API req/s (16 in flight)",
        "api",
        "per_second",
        0,
        lambda o, r: o >= 15000,
        ">= 15000",
    ),
    ("  server CPU us per request", "api", "server_us_per_op", 1, None, ""),
    # The same phases measured by the Python client (when the compiled one measured the rows
    # above): read its cli CPU against wall to see where it was the limit.
    ("connect+sub /s (Python client)", "connect_py", "per_second", 0, None, ""),
    ("fan-out /s (Python client)", "fanout_py", "per_second", 0, None, ""),
    ("API req/s (Python client)", "api_py", "per_second", 0, None, ""),
]


def verdict(row: Row, o: Any, r: Any) -> str:
    check, text = row[4], row[5]
    if check is None or not is_num(o):
        return text
    return f"{text} {'ok' if check(float(o), float(r) if is_num(r) else None) else 'MISS'}"


def notes(runs: Runs) -> list[str]:
    """Failures, errors, and phases where other processes took a noticeable share of CPU."""
    lines = []
    for server in runs:
        for i, run in enumerate(runs.get(server, [])):
            tag = f"  {server} run {i + 1}:"
            if dig(run, "failure"):
                lines.append(f"{tag} {dig(run, 'failure')}")
            err = dig(run, "client_errors") or {}
            if err.get("dropped") or err.get("errors"):
                lines.append(f"{tag} dropped {err['dropped']}, errors {err['errors']}")
                lines.extend(f"      {sample}" for sample in err.get("samples", []))
            for phase in PHASES:
                if dig(run, phase, "error"):
                    lines.append(f"{tag} {phase} failed: {dig(run, phase, 'error')}")
            if dig(run, "connect", "failed"):
                lines.append(f"{tag} {dig(run, 'connect', 'failed')} connections failed")
            busy = [
                f"{phase} {dig(run, phase, 'other_cpu'):.2f}s/{dig(run, phase, 'wall'):.2f}s"
                for phase in PHASES
                if noisy(run, phase)
            ]
            if busy:
                lines.append(f"{tag} other processes busy (cpu/wall): {', '.join(busy)}")
    return lines


def table(
    n: int,
    runs: Runs,
    servers: tuple[str, str] = SERVERS,
    rows: list[Row] | None = None,
    title: str | None = None,
) -> str:
    """One block for ``n`` connections: the two servers (setups), ratio first / second, target,
    CPU per server."""
    repeats = max((len(r) for r in runs.values()), default=0)
    a, b = servers
    head = f"{'':<34}{a:>12}{b:>12}{'ratio':>7}  {'target':<17}"
    head += f"{'cpu cli/srv/wall s: ' + a:>30}{b:>18}"
    title = title or f"{n} subscribed connections"
    lines = [f"== {title}" + (f" (median of {repeats} runs) ==" if repeats > 1 else " =="), head]
    for row in ROWS if rows is None else rows:
        label, phase, figure, digits = row[:4]
        picked = [pick(runs.get(server, []), phase, figure) for server in servers]
        values = [value for value, _ in picked]
        cells = [
            number(value, digits)
            + ("*" if dig(run, phase, "partial") else "~" if noisy(run, phase) else " ")
            for value, run in picked
        ]
        line = f"{label:<34}{cells[0]:>12}{cells[1]:>12}{ratio(*values):>7}  "
        line += f"{verdict(row, *values):<17}"
        if not label.startswith(" "):  # indented rows derive from the row above
            line += f"{cpu(picked[0][1], phase):>30}{cpu(picked[1][1], phase):>18}"
        lines.append(line.rstrip())
    return "\n".join(lines + notes(runs))


def hold_table(n: int, seconds: float, runs: Runs) -> str:
    lines = [f"== hold: {n} subscribed connections for {seconds:.0f} s, keepalive on =="]
    for server in SERVERS:
        for result in runs.get(server, []):
            held = dig(result, "hold")
            if not isinstance(held, dict):
                why = dig(result, "failure") or dig(result, "connect")
                lines.append(f"{server:<10} no result: {why}")
                continue
            ok = held["dropped"] == 0 and held["errors"] == 0 and held["held"] == n
            lines.append(
                f"{server:<10} held {held['held']}/{n}  dropped {held['dropped']}  "
                f"errors {held['errors']}  pings answered {held['pings_answered']}  "
                f"RSS {held['rss_start_kb'] / 1024:.1f}->{held['rss_end_kb'] / 1024:.1f} MB  "
                f"cpu cli/srv/wall {cpu(result, 'hold')}  {'ok' if ok else 'MISS'}"
            )
            samples = dig(result, "client_errors", "samples") or []
            lines.extend(f"    {sample}" for sample in samples)
    return "\n".join(lines)
