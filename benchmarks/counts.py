"""Subscription counts benchmark: what ``OVERTONE_SUBSCRIPTION_COUNT`` costs one busy channel.

N connections (10 000 by default) connect and subscribe to one public channel (``bench``) on
a fresh ``overtone start`` with the feature off (``OVERTONE_SUBSCRIPTION_COUNT=false``), and
on another fresh one with it on (``=true``), interleaved ``--repeat`` times (off, on, on,
off, ...). Each server is pinned to core 0 and the compiled load client
(``benchmarks/native/loadgen.c``, its ``connect`` mode with a hold) to core 1, as in
``benchmarks.run``. With the feature on, every subscriber gets a
``pusher_internal:subscription_count`` right after ``subscription_succeeded``, and all of
them get one again (coalesced by the server) while the count changes; the client reads
every frame and counts those. After the last subscription the connections stay open and idle
for ``--idle`` seconds (6), still read, and the server's RSS is taken. Figures (medians of
the runs):

- connect+subscribe /s, off and on, ratio on / off (goal >= 0.9),
- server (and client) CPU us per connection,
- the ``subscription_count`` frames the clients received during the connect phase, in all
  and per connection, and during the idle time after it,
- server RSS per idle connection (after the idle time, minus before connecting).

    python -m benchmarks.counts                              # 10 000 connections, 3 runs each
    python -m benchmarks.counts --connections 2000 --quick   # 1 run each
    python -m benchmarks.counts --repeat 5 --json counts.json
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

from benchmarks import native
from benchmarks.credentials import BENCH_APP
from benchmarks.history import overtone_source
from benchmarks.history_report import best_of
from benchmarks.procstat import rss_kb
from benchmarks.report import Result, Row, Runs, dig, is_num, number, pick, table
from benchmarks.run import ROOT, Server, raise_nofile

ON, OFF = "on", "off"
TARGET = 0.9  # connect+subscribe/s with counts on >= 0.9x off
CHANNEL = "bench"
INFLIGHT = 200  # handshakes in flight, as in benchmarks.run
IDLE_S = 6.0
"""Seconds the connections stay open and idle after the last subscription, before the RSS
reading: the server announces a busy channel's count at least every 5 s while it changes
(``overtone.channels.counts``), so its last announcement (the final count) falls within."""


def rows(idle: float) -> list[Row]:
    """The table's rows: first (on) / second (off), median of the runs."""
    return [
        (
            "connect+subscribe /s",
            "connect",
            "per_second",
            0,
            lambda on, off: off is not None and on >= TARGET * off,
            f">= {TARGET}x off",
        ),
        ("  server CPU us per connection", "connect", "server_us_per_op", 1, None, ""),
        ("  client CPU us per connection", "connect", "client_us_per_conn", 1, None, ""),
        ("subscription_count frames received", "connect", "subscription_counts", 0, None, ""),
        ("  per connection", "connect", "counts_per_conn", 2, None, ""),
        (f"then frames in {idle:g} s idle", "idle", "subscription_counts", 0, None, ""),
        ("server RSS per idle conn KB", "rss", "kb_per_conn", 2, None, ""),
    ]


def measure(on: bool, args: argparse.Namespace, workdir: Path, binary: Path) -> dict[str, Any]:
    """One fresh server (counts ``on`` or off): N connect+subscribe, ``--idle`` s idle, RSS."""
    feature = {"OVERTONE_SUBSCRIPTION_COUNT": "true" if on else "false"}
    server = Server("overtone", args, workdir, feature)
    try:
        problem = server.wait_ready()
        if problem is not None:
            return {"failure": f"overtone did not start: {problem}"}
        pid = server.proc.pid
        rss_before = rss_kb(pid)
        rss: dict[str, Any] = {"before_kb": rss_before}

        def idle_read(name: str, figures: dict[str, Any]) -> None:
            if name == "idle":  # the connections are still open: the server's RSS with them
                held = int(figures.get("held") or 0)
                rss.update(after_kb=rss_kb(pid), held=held)
                rss["kb_per_conn"] = (rss["after_kb"] - rss_before) / held if held else None

        argv = ["connect", str(server.port), BENCH_APP.key, CHANNEL, str(args.connections)]
        argv += [str(INFLIGHT), str(args.timeout), str(args.idle)]
        keys = [("connect", "done"), ("idle", "held")]
        budget = args.timeout + args.idle + 30
        result: dict[str, Any] = native.phases(binary, argv, pid, args.pin, budget, keys, idle_read)
        result["rss"] = rss
        if server.proc.poll() is not None:
            result["failure"] = f"server exited with {server.proc.returncode}: {server.tail()}"
        connect = result.get("connect") or {}
        done = connect.get("done")
        if done:  # what the client spent, and the frames each connection received
            connect["client_us_per_conn"] = round(connect["client_cpu"] / done * 1e6, 1)
            connect["counts_per_conn"] = connect.get("subscription_counts", 0) / done
        return result
    finally:
        server.stop()


def run_line(result: dict[str, Any]) -> str:
    """One run's figures, printed as it ends."""
    if "failure" in result and "connect" not in result:
        return f"failed: {result['failure']}"
    connect, idle = result.get("connect") or {}, result.get("idle") or {}
    if "error" in connect:
        return f"failed: {connect['error']}"
    server_us = number(connect.get("server_us_per_op"), 1)
    frames = number(connect.get("subscription_counts"))
    line = (
        f"{number(connect.get('per_second'))}/s, server {server_us} us/conn, client cpu"
        f" {connect.get('client_cpu')} of {connect.get('wall')} s wall (core 1 busy"
        f" {connect.get('core1_busy')}), subscription_count frames {frames}"
        f" + {number(idle.get('subscription_counts'))} idle,"
        f" RSS {number(dig(result, 'rss', 'kb_per_conn'), 2)} KB/conn"
    )
    for problem in ("failure", "error"):
        if problem in result:
            line += f"; {problem}: {result[problem]}"
    return line


def least(runs: list[Result], phase: str, figure: str) -> Any:
    """The smallest value of a figure over the runs (``None`` when there is none)."""
    values = [dig(run, phase, figure) for run in runs]
    return min((v for v in values if is_num(v)), default=None)


def best(runs: Runs) -> str:
    """The best run of each setup (other processes only ever slow a run down): the highest
    rate and the least server CPU per connection."""
    on, off = (best_of(runs.get(key, []), "connect", "per_second") for key in (ON, OFF))
    line = f"best runs: on {number(on)}, off {number(off)} connect+subscribe/s"
    if is_num(on) and is_num(off) and off:
        line += f", ratio {on / off:.2f}"
    on, off = (least(runs.get(key, []), "connect", "server_us_per_op") for key in (ON, OFF))
    return line + f"; server CPU us per connection on {number(on, 1)}, off {number(off, 1)}"


def checks(runs: Runs, n: int) -> list[str]:
    """What the figures say about the runs themselves: frames where none belong, none where
    they do (a tree without the feature ignores the variable), connections lost when idle."""
    lines = []
    for key in (OFF, ON):
        for i, run in enumerate(runs.get(key, [])):
            tag = f"  {key} run {i + 1}:"
            done, frames = dig(run, "connect", "done"), dig(run, "connect", "subscription_counts")
            if dig(run, "idle", "dropped"):
                lines.append(f"{tag} {dig(run, 'idle', 'dropped')} connections closed when idle")
            if not is_num(done) or not is_num(frames):
                continue
            if done < n:
                lines.append(f"{tag} {done} of {n} subscribed")
            if key == OFF and frames:
                lines.append(f"{tag} {frames} subscription_count frames with the feature off")
            if key == ON and frames < done:
                lines.append(
                    f"{tag} {frames} subscription_count frames for {done} subscriptions: does"
                    " this server send them (grep -rn OVERTONE_SUBSCRIPTION_COUNT src)?"
                )
    return lines


SUMMARY = {
    "per_second": ("connect", "per_second"),
    "server_us_per_conn": ("connect", "server_us_per_op"),
    "client_us_per_conn": ("connect", "client_us_per_conn"),
    "frames_connect": ("connect", "subscription_counts"),
    "frames_per_conn": ("connect", "counts_per_conn"),
    "frames_idle": ("idle", "subscription_counts"),
    "rss_kb_per_conn": ("rss", "kb_per_conn"),
}


def summary(runs: Runs) -> dict[str, Any]:
    """Medians for the JSON (over undisturbed runs, as in the table), and the rate ratio."""
    out: dict[str, Any] = {
        f"{key}_{name}": pick(runs.get(key, []), phase, figure)[0]
        for key in (ON, OFF)
        for name, (phase, figure) in SUMMARY.items()
    }
    on, off = out[f"{ON}_per_second"], out[f"{OFF}_per_second"]
    out["ratio"] = round(on / off, 3) if is_num(on) and is_num(off) and off else None
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000, help="to the one channel")
    parser.add_argument("--repeat", type=int, help="runs per setup, interleaved (3; quick 1)")
    parser.add_argument("--quick", action="store_true", help="one run each")
    parser.add_argument("--timeout", type=float, default=60.0, help="bound of the connect phase")
    parser.add_argument("--idle", type=float, default=IDLE_S, help="idle s before the RSS")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--python", default=str(ROOT / ".venv/bin/python"), help="for overtone")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="skip taskset")
    args = parser.parse_args(argv)
    args.repeat = max(1, args.repeat or (1 if args.quick else 3))
    n = args.connections
    # SIGTERM unwinds like Ctrl-C, so the running server and load client are stopped too
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    soft, hard = raise_nofile()
    print(f"RLIMIT_NOFILE raised to {soft} (hard cap {hard}); each process needs N + ~150 fds")
    if n + 200 > hard:
        print(f"warning: {n} connections exceed the fd cap {hard}", flush=True)
    print(f"servers pinned to core 0, load client to core 1: {args.pin}")
    print(f"overtone imported from {overtone_source(args)}", flush=True)
    binary, why = native.build()
    if binary is None:
        print(f"this benchmark needs the compiled load client: {why}")
        return 1
    runs: Runs = {ON: [], OFF: []}
    with tempfile.TemporaryDirectory(prefix="overtone-counts-") as tmp:
        for rep in range(args.repeat):
            for key in (OFF, ON) if rep % 2 == 0 else (ON, OFF):
                print(f"... run {rep + 1}: counts {key}, {n} connections", flush=True)
                runs[key].append(measure(key == ON, args, Path(tmp), binary))
                print(f"    {run_line(runs[key][-1])}", flush=True)
    title = f"subscription counts on vs off: {n} connections subscribing to one public channel"
    if args.repeat > 1:
        title += f", {args.repeat} interleaved runs each"
    print("\n" + table(n, runs, (ON, OFF), rows(args.idle), title))
    if args.repeat > 1:
        print(best(runs))
    for line in checks(runs, n):
        print(line)
    print(
        "ratio = on / off; * = partial; ~ = other processes were busy during that phase (medians"
        " skip such runs if they can).\ncpu cli/srv/wall: load-client CPU s / server CPU s /"
        " wall s of the connect phase; a client CPU near wall means the client, not the"
        " server, was the limit."
    )
    if args.json is not None:
        report = {"args": {**vars(args), "json": str(args.json)}, "runs": runs}
        report["summary"] = summary(runs)
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
