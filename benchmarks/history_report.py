"""Formats the history benchmark: fan-out and latency with history on against off, memory,
and recovery; plus the one-line summary."""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.report import Result, Row, Runs, dig, is_num, number, pick, table
from overtone.channels.history import ENTRY_OVERHEAD  # what the node cap charges per event

TARGET_FANOUT = 0.95  # fan-out with history on >= 0.95x off
TARGET_P99_MS = 0.2  # p99 with history on <= off + 0.2 ms
MIB = 1_048_576
ON, OFF = "on", "off"

FANOUT: list[Row] = [
    (
        "fan-out deliveries /s",
        "fanout",
        "per_second",
        0,
        lambda o, r: r is not None and o >= TARGET_FANOUT * r,
        f">= {TARGET_FANOUT}x off",
    ),
    ("  server CPU us per delivery", "fanout", "server_us_per_op", 2, None, ""),
]
LATENCY: list[Row] = [
    ("latency p50 ms (100 subs, 20/s)", "latency", "p50_ms", 3, None, ""),
    (
        "latency p99 ms (100 subs, 20/s)",
        "latency",
        "p99_ms",
        3,
        lambda o, r: r is not None and o - r <= TARGET_P99_MS,
        f"<= off + {TARGET_P99_MS} ms",
    ),
]


def fanout_table(n: int, result: Result) -> str:
    """One block per subscriber count: medians of the interleaved runs, on / off."""
    if "failure" in result:
        return f"== fan-out, {n} subscribers: no result: {result['failure']}"
    runs: Runs = dig(result, "runs") or {}
    with_latency = any(dig(run, "latency") for run in runs.get(ON, []))
    repeats = max((len(r) for r in runs.values()), default=0)
    title = f"history on vs off: {n} subscribers on one channel"
    if repeats > 1:
        title += f", {repeats} interleaved runs each"
    lines = [table(n, runs, (ON, OFF), FANOUT + (LATENCY if with_latency else []), title)]
    best = [best_of(runs.get(key, []), "fanout", "per_second") for key in (ON, OFF)]
    if all(is_num(value) and value for value in best):
        lines.append(
            f"best runs: on {number(best[0])}, off {number(best[1])} deliveries/s, ratio"
            f" {best[0] / best[1]:.2f} (other processes only ever slow a run down)"
        )
    if with_latency:
        on, off = (pick(runs.get(key, []), "latency", "p99_ms")[0] for key in (ON, OFF))
        if is_num(on) and is_num(off):
            verdict = "ok" if on - off <= TARGET_P99_MS else "MISS"
            lines.append(
                f"p99 on - off = {on - off:+.3f} ms (target <= +{TARGET_P99_MS} ms: {verdict})"
            )
    for key in (ON, OFF):
        connect = dig(result, f"connect_{key}") or {}
        if connect.get("failed"):
            lines.append(f"  {key}: {connect['failed']} connections failed")
    return "\n".join(lines)


def best_of(runs: list[Result], phase: str, figure: str) -> Any:
    values = [dig(run, phase, figure) for run in runs]
    return max((v for v in values if is_num(v)), default=None)


def fanout_figures(result: Result) -> dict[str, Any]:
    """Medians for the summary: deliveries/s on and off, their ratio, p50/p99."""
    runs: Runs = dig(result, "runs") or {}
    out: dict[str, Any] = {}
    for key in (ON, OFF):
        out[f"{key}_per_s"] = pick(runs.get(key, []), "fanout", "per_second")[0]
        out[f"{key}_us_per_delivery"] = pick(runs.get(key, []), "fanout", "server_us_per_op")[0]
        for figure in ("p50_ms", "p99_ms"):
            value = pick(runs.get(key, []), "latency", figure)[0]
            if value is not None:
                out[f"{key}_{figure}"] = value
    if is_num(out[f"{ON}_per_s"]) and is_num(out[f"{OFF}_per_s"]) and out[f"{OFF}_per_s"]:
        out["ratio"] = round(out[f"{ON}_per_s"] / out[f"{OFF}_per_s"], 3)
    best = [best_of(runs.get(key, []), "fanout", "per_second") for key in (ON, OFF)]
    if all(is_num(value) and value for value in best):
        out["best_ratio"] = round(best[0] / best[1], 3)
    return out


def cpu_cell(figures: dict[str, Any] | None) -> str:
    if not isinstance(figures, dict) or "wall" not in figures:
        return "-"
    return f"{figures['client_cpu']:.2f}/{figures['server_cpu']:.2f}/{figures['wall']:.2f}"


def memory_figures(result: Result, control: Result | None = None) -> dict[str, Any]:
    """RSS growth, events held, bytes per held event (gross, and net of the history-off
    control when there is one), and what the node cap charged for them."""
    growth = dig(result, "growth_kb")
    held = dig(result, "held_estimate") if dig(result, "history_on") else 0
    stored = dig(result, "stored_event_bytes")
    out: dict[str, Any] = {"growth_mb": growth / 1024 if is_num(growth) else None, "held": held}
    if is_num(growth) and held:
        out["bytes_per_event"] = round(growth * 1024 / held)
        base = dig(control, "growth_kb")
        if is_num(base):
            out["net_bytes_per_event"] = round((growth - base) * 1024 / held)
    if is_num(stored) and held:
        out["charged_mb"] = held * (stored + ENTRY_OVERHEAD) / MIB
    return out


def memory_table(points: list[tuple[str, Result]], cap_bytes: int) -> str:
    head = f"{'':<40}{'published':>10}{'held':>9}{'per ch':>12}{'RSS MB':>14}{'growth':>8}"
    head += f"{'B/held':>8}{'charged':>9}{'pub us/ev':>10}  {'cpu cli/srv/wall s':>18}"
    lines = [
        f"== history memory: one overtone process, {cap_bytes / MIB:.0f} MiB node cap ==",
        head,
    ]
    control = next((r for label, r in points if "off" in label), None)
    stored = None
    for label, result in points:
        if "failure" in result:
            lines.append(f"{label:<40}no result: {result['failure']}")
            continue
        stored = stored or result.get("stored_event_bytes")
        fig = memory_figures(result, control if result is not control else None)
        per_ch = "-"
        if result.get("history_on"):
            per_ch = f"{result['held_min']}/{result['held_mean']:.0f}/{result['held_max']}"
        rss = f"{result['rss_before_kb'] / 1024:.0f}->{result['rss_after_kb'] / 1024:.0f}"
        published = dig(result, "publish", "events")
        line = f"{label:<40}{number(published):>10}{number(fig['held']):>9}{per_ch:>12}"
        line += f"{rss:>14}{number(fig['growth_mb'], 1):>8}{number(fig.get('bytes_per_event')):>8}"
        line += f"{number(fig.get('charged_mb'), 1):>9}"
        line += f"{number(dig(result, 'publish', 'server_us_per_event'), 2):>10}"
        line += f"  {cpu_cell(dig(result, 'publish')):>18}"
        lines.append(line)
        if dig(result, "publish", "errors"):
            lines.append(f"    {result['publish']['errors']} publish requests refused")
        at_last, sampled = result.get("positions_at_last_event"), result.get("sampled_channels")
        if result.get("history_on") and at_last != sampled:
            lines.append(f"    only {at_last} of {sampled} sampled channels end at the last event")
    first = points[0][1] if points else {}
    fig = memory_figures(first, control)
    if stored and is_num(fig.get("growth_mb")):
        fits = cap_bytes / (stored + ENTRY_OVERHEAD)
        lines.append(
            f"stored event {stored} B; the cap charges {stored} + {ENTRY_OVERHEAD} B per event,"
            f" so ~{fits:,.0f} events fit in {cap_bytes / MIB:.0f} MiB".replace(",", " ")
        )
        growth = fig["growth_mb"] * 1024 * 1024
        net = fig.get("net_bytes_per_event")
        lines.append(
            f"at the cap: RSS growth {growth / MIB:.1f} MiB = {growth / cap_bytes:.2f}x the cap;"
            f" {fig.get('bytes_per_event')} B of RSS per held event"
            + (f" ({net} B net of the history-off control)" if net is not None else "")
        )
    lines.append(
        "held = events per channel sampled through the history route x channels; per ch ="
        f" min/mean/max held; B/held = RSS growth / held; charged = held x (stored +"
        f" {ENTRY_OVERHEAD} B), the events' share of the cap; pub us/ev = server CPU per"
        " published event"
    )
    return "\n".join(lines)


def recovery_table(result: Result) -> str:
    n = result.get("connections", 0)
    if "failure" in result:
        return f"== recovery: no result: {result['failure']}"
    rounds: list[Result] = result.get("rounds") or []
    channels = result.get("channels", 1)
    lines = [
        f"== recovery: {n} clients on {channels} channel(s) disconnect, "
        f"{dig(result, 'args', 'missed')} events are published, all reconnect at once with"
        " recover ==",
        f"{'round':<7}{'replayed':>10}{'to subscribed s':>17}{'to last replay s':>18}"
        f"{'replayed/s':>12}{'recovered':>11}{'failures':>10}  {'cpu cli/srv/wall s':>18}",
    ]
    client_bound = False
    for each in rounds:
        recovered = n - each.get("not_recovered", 0) - each.get("connect_failed", 0)
        mark = "*" if each.get("partial") else "~" if noisy(each) else " "
        lines.append(
            f"{each.get('round', '?'):<7}{number(each.get('replayed')):>10}"
            f"{number(each.get('to_last_subscribed_s'), 3):>17}"
            f"{number(each.get('to_last_replay_s'), 3):>18}"
            f"{number(each.get('replayed_per_second')) + mark:>12}"
            f"{recovered:>8}/{n:<3}{each.get('failures', '-'):>9}  {cpu_cell(each):>18}"
        )
        wall = each.get("wall") or 0
        client_bound |= bool(wall) and each.get("client_cpu", 0) > 0.8 * wall
    fig = recovery_figures(result)
    if fig.get("server_us_per_replayed") is not None:
        lines.append(
            f"server CPU per replayed event ~{fig['server_us_per_replayed']:.1f} us (a storm's"
            " server CPU minus what the first connect+subscribe of as many clients took,"
            " / events replayed)"
        )
    if fig.get("per_second") is not None:
        verdict = "ok" if fig["failures"] == 0 else "MISS"
        lines.append(
            f"median replayed/s {number(fig['per_second'])}; failures {fig['failures']} over all"
            f" rounds (target 0: {verdict}): a failure is a client without recovered:true, or"
            " whose events after its position were not exactly the missed ones, then the live"
            f" ones, in order ({dig(result, 'args', 'live')} live events published during"
            " each storm)"
        )
    if client_bound:
        lines.append("note: the load client's CPU was near wall: the client was the limit")
    errors = dig(result, "client_errors") or {}
    if errors.get("dropped") or errors.get("errors"):
        lines.append(f"client: dropped {errors['dropped']}, errors {errors['errors']}")
        lines.extend(f"    {sample}" for sample in errors.get("samples", []))
    return "\n".join(lines)


def noisy(figures: Result) -> bool:
    other, wall = dig(figures, "other_cpu"), dig(figures, "wall")
    return is_num(other) and is_num(wall) and other > 0.1 * max(0.5, wall)


def recovery_figures(result: Result) -> dict[str, Any]:
    rounds: list[Result] = result.get("rounds") or []
    rates = [r["replayed_per_second"] for r in rounds if is_num(r.get("replayed_per_second"))]
    quiet = [
        r["replayed_per_second"]
        for r in rounds
        if is_num(r.get("replayed_per_second")) and not noisy(r)
    ]
    connect = dig(result, "connect") or {}
    per_replayed = []
    for each in rounds:
        replayed, cpu = each.get("replayed"), each.get("server_cpu")
        if is_num(replayed) and replayed and is_num(cpu) and is_num(connect.get("server_cpu")):
            per_replayed.append((cpu - connect["server_cpu"]) / replayed * 1e6)
    return {
        "per_second": round(statistics.median(quiet or rates)) if rates else None,
        "server_us_per_replayed": round(statistics.median(per_replayed), 2)
        if per_replayed
        else None,
        "failures": sum(int(r.get("failures", 0)) for r in rounds) if rounds else None,
        "rounds": len(rounds),
    }
