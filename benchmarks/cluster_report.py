"""Formats the cluster benchmark: the two setups of a scenario side by side, medians over
repeats, then the Redis hop, exactly-once counts and where the server CPU went."""

from __future__ import annotations

import argparse

from benchmarks.report import Result, Row, Runs, dig, is_num, number, pick, table

TARGET_FANOUT = 0.8  # cluster fan-out >= 0.8x one node on the same total CPU
TARGET_HOP_MS = 2.0  # the Redis hop adds <= 2 ms to p50

CONNECT: list[Row] = [
    ("connect+subscribe /s", "connect", "per_second", 0, None, ""),
    ("  server CPU us per connection", "connect", "server_us_per_op", 1, None, ""),
    ("server RSS per idle conn KB", "rss", "kb_per_conn", 2, None, ""),
]
FANOUT_TARGET: Row = (
    "fan-out deliveries /s",
    "fanout",
    "per_second",
    0,
    lambda o, r: r is not None and o >= TARGET_FANOUT * r,
    f">= {TARGET_FANOUT}x",
)
FANOUT: Row = ("fan-out deliveries /s", "fanout", "per_second", 0, None, "")
LATENCY: list[Row] = [
    ("  server CPU us per delivery", "fanout", "server_us_per_op", 2, None, ""),
    ("latency p50 ms (100 subs, 20/s)", "latency", "p50_ms", 3, None, ""),
    ("latency p99 ms (100 subs, 20/s)", "latency", "p99_ms", 3, None, ""),
]
SPLIT: list[Row] = [
    ("  p50 ms, subs on the API node", "latency", "local_p50_ms", 3, None, ""),
    ("  p50 ms, subs via Redis", "latency", "remote_p50_ms", 3, None, ""),
    ("  p99 ms, subs via Redis", "latency", "remote_p99_ms", 3, None, ""),
]
API: list[Row] = [
    ("signed API req/s (16 in flight)", "api", "per_second", 0, None, ""),
    ("  server CPU us per request", "api", "server_us_per_op", 1, None, ""),
]


def hop(runs: Runs, names: tuple[str, str]) -> list[str]:
    """The p50 the Redis hop adds: cluster p50 minus single-node p50 (medians)."""
    many, one = (pick(runs.get(name, []), "latency", "p50_ms")[0] for name in names)
    remote = pick(runs.get(names[0], []), "latency", "remote_p50_ms")[0]
    if not (is_num(many) and is_num(one)):
        return ["Redis hop: no latency figures"]
    added = many - one
    ok = "ok" if added <= TARGET_HOP_MS else "MISS"
    line = f"Redis hop: p50 {names[0]} - {names[1]} = {added:+.3f} ms (target <= 2 ms: {ok})"
    if is_num(remote):
        line += f"; subscribers reached via Redis only: {remote - one:+.3f} ms"
    return [line]


def once(run: Result, phase: str) -> str:
    figures = dig(run, phase)
    if not isinstance(figures, dict) or "duplicates" not in figures:
        return f"{phase}: -"
    subs = figures.get("subscribers", "?")
    flag = "ok" if figures["duplicates"] == figures["misses"] == figures["stray"] == 0 else "MISS"
    errors = figures.get("trigger_errors") or 0
    return (
        f"{phase} {figures.get('events', '?')} events x {subs} subs: duplicates "
        f"{figures['duplicates']}, misses {figures['misses']}, stray {figures['stray']}"
        + (f" ({errors} triggers failed)" if errors else "")
        + ("  (phase timed out)" if figures.get("partial") else "")
        + f"  {flag}"
    )


def each_cpu(run: Result, phase: str, labels: list[str]) -> str:
    spent = dig(run, phase, "server_cpu_each")
    if not isinstance(spent, list) or len(spent) != len(labels):
        return ""
    return f"{phase} " + ", ".join(f"{lab} {s:.2f}" for lab, s in zip(labels, spent, strict=True))


def details(runs: Runs, labels: dict[str, list[str]]) -> list[str]:
    """Per run: exactly-once counts, subscribers per node, CPU per server process, core use."""
    lines = ["exactly once (every subscriber, every event):"]
    for name, results in runs.items():
        for i, run in enumerate(results):
            tag = f"  {name} run {i + 1}:"
            lines.append(f"{tag} {once(run, 'fanout')}; {once(run, 'latency')}")
    lines.append("server CPU s per process, and non-idle share of core0/core1:")
    for name, results in runs.items():
        for i, run in enumerate(results):
            per_node = dig(run, "connect", "per_node")
            spread = "/".join(map(str, per_node)) if isinstance(per_node, list) else "-"
            cpu = [each_cpu(run, phase, labels[name]) for phase in ("fanout", "api")]
            cores = ", ".join(
                f"{phase} {dig(run, phase, 'core0_busy')}/{dig(run, phase, 'core1_busy')}"
                for phase in ("connect", "fanout", "api")
            )
            lines.append(f"  {name} run {i + 1}: subscribers per port {spread}; cores {cores}")
            lines.extend(f"      {text}" for text in cpu if text)
    return lines


def labels_of(name: str, results: list[Result]) -> list[str]:
    setup = dig(results[0], "setup") if results else None
    if not isinstance(setup, dict):
        return []
    redis = ["redis"] if setup.get("redis") else []
    if setup.get("workers", 1) > 1:
        return [f"worker{i + 1}" for i in range(setup["workers"])] + redis
    nodes = int(setup.get("nodes", 1))
    return ["node1(API)", *(f"node{i + 1}" for i in range(1, nodes)), *redis]


def nodes_table(args: argparse.Namespace, runs: Runs, names: tuple[str, str]) -> str:
    n = args.connections
    pin = "every server process and Redis on core 0, load client on core 1"
    title = f"{names[0]} + Redis vs {names[1]}: {n} subscribers ({pin if args.pin else 'unpinned'})"
    lines = [table(n, runs, names, [*CONNECT, FANOUT_TARGET, *LATENCY, *SPLIT, *API], title)]
    lines += hop(runs, names)
    first = pick(runs.get(names[0], []), "fanout", "per_second")[0]
    second = pick(runs.get(names[1], []), "fanout", "per_second")[0]
    if is_num(first) and is_num(second) and second:
        verdict = "ok" if first >= TARGET_FANOUT * second else "MISS"
        lines.append(
            f"fan-out {names[0]} / {names[1]} = {first / second:.2f} "
            f"({number(first)} vs {number(second)} deliveries/s; target >= {TARGET_FANOUT}: "
            f"{verdict})"
        )
    cost = [pick(runs.get(name, []), "fanout", "server_us_per_op")[0] for name in names]
    if all(is_num(us) and us for us in cost):  # what the ratio is when the server core is full
        lines.append(
            f"  by server CPU per delivery ({cost[0]:.2f} vs {cost[1]:.2f} us): "
            f"{names[1]} / {names[0]} = {cost[1] / cost[0]:.2f}, less sensitive to other load"
        )
    lines += details(runs, {name: labels_of(name, results) for name, results in runs.items()})
    lines.append(legend(names, "API calls and latency triggers go to node1 (the first port)"))
    return "\n".join(lines)


def workers_table(args: argparse.Namespace, runs: Runs, names: tuple[str, str]) -> str:
    n = args.connections
    pin = "workers and Redis unpinned, load client on core 1 (it competes with them)"
    title = f"{names[0]} vs {names[1]}, scaling on, one Redis: {n} subscribers ({pin})"
    if not args.pin:
        title = f"{names[0]} vs {names[1]}, scaling on, one Redis: {n} subscribers (unpinned)"
    lines = [table(n, runs, names, [*CONNECT, FANOUT, *LATENCY, *API], title)]
    lines += details(runs, {name: labels_of(name, results) for name, results in runs.items()})
    lines.append(legend(names, "one port; the kernel (SO_REUSEPORT) spreads connections"))
    return "\n".join(lines)


def legend(names: tuple[str, str], where: str) -> str:
    return (
        f"ratio = {names[0]} / {names[1]}; * = partial; ~ = other processes busy; "
        f"{where}.\ncpu cli/srv/wall: load-client CPU s / CPU s of every server process "
        "(nodes, workers, Redis) / wall s; a client CPU near wall means the client was the limit."
    )
