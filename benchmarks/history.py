"""History benchmark: what channel history (protocol.md §8) costs, and how fast recovery is.

Servers run pinned to core 0, the load client (``benchmarks.history_client``) to core 1, as in
``benchmarks.run``. Three sections, in one run:

- ``fanout``: for each subscriber count, one server with history on (the defaults) and one
  with ``OVERTONE_HISTORY_ENABLED=false`` run side by side; the client subscribes N to each and
  alternates fan-out phases between them (ABBA), then latency phases (first count only).
  Medians of the runs; ratio on / off.
- ``memory``: a fresh server per point gets ``channels x events`` events through the signed
  ``batch_events`` API; RSS growth, events held, bytes per held event.
- ``recovery``: 1 000 clients disconnect, 50 events are published, all reconnect at once
  with ``recover``; missed events replayed per second, and a check of every client.

    python -m benchmarks.history                  # everything, ~2-3 min
    python -m benchmarks.history --quick          # shorter phases, fewer repeats
    python -m benchmarks.history --sections memory,recovery --json history.json
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks.history_report import (
    fanout_figures,
    fanout_table,
    memory_figures,
    memory_table,
    recovery_figures,
    recovery_table,
)
from benchmarks.run import ROOT, Server, raise_nofile, run_client
from overtone.channels.history import ENTRY_OVERHEAD

HISTORY_MEMORY = 64 * 1_048_576  # OVERTONE_HISTORY_MEMORY's default
STORED_EVENT = 202  # bytes of one stored event of benchmarks.history_client's memory mode
ACTIVITY_TIMEOUT = "120"  # no ping round from an idle server in the middle of a phase
SECTIONS = ("fanout", "memory", "recovery")


def client(args: argparse.Namespace, servers: list[Server], *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "benchmarks.history_client", *extra]
    cmd += ["--ports", ",".join(str(s.port) for s in servers)]
    cmd += ["--server-pids", ",".join(str(s.proc.pid) for s in servers)]
    return [*cmd, "--timeout", str(args.timeout)]


def measure(
    args: argparse.Namespace,
    workdir: Path,
    name: str,
    envs: list[dict[str, str]],
    *extra: str,
) -> dict[str, Any]:
    """Start one server per ``envs`` entry, run the client with ``extra``, stop them."""
    servers: list[Server] = []
    try:
        for env in envs:
            servers.append(Server("overtone", args, workdir, env))
        for server in servers:
            problem = server.wait_ready()
            if problem is not None:
                return {"failure": f"overtone did not start: {problem}"}
        log_path = workdir / f"client-{name}.log"
        result = run_client(client(args, servers, *extra), args.pin, 8 * args.timeout, log_path)
        for server in servers:
            if server.proc.poll() is not None:
                result["failure"] = f"server exited with {server.proc.returncode}: {server.tail()}"
        return result
    finally:
        for server in servers:
            server.stop()


def run_fanout(args: argparse.Namespace, workdir: Path, n: int, first: bool) -> dict[str, Any]:
    on = {"REVERB_APP_ACTIVITY_TIMEOUT": ACTIVITY_TIMEOUT}
    off = {**on, "OVERTONE_HISTORY_ENABLED": "false"}
    extra = ["--mode", "fanout", "--connections", str(n), "--labels", "on,off"]
    extra += ["--reps", str(args.reps), "--deliveries", str(args.deliveries)]
    if first and args.latency_reps:
        extra += ["--latency-reps", str(args.latency_reps)]
        extra += ["--latency-seconds", str(args.latency_seconds)]
    return measure(args, workdir, f"fanout-{n}", [on, off], *extra)


def memory_points(args: argparse.Namespace) -> list[tuple[str, dict[str, str], int, int]]:
    """(label, server env, channels, events per channel) of each memory measurement."""
    big, off = args.channels, {"OVERTONE_HISTORY_ENABLED": "false"}
    small = max(1, big // 10)
    capped = big * 100 * (STORED_EVENT + ENTRY_OVERHEAD) > HISTORY_MEMORY

    def label(channels: int, events: int, why: str) -> str:
        return f"{channels:,} ch x {events} ev: {why}".replace(",", " ")

    return [
        (label(big, 100, "the node cap decides" if capped else "all held"), {}, big, 100),
        ("  same, history off (control)", off, big, 100),
        (label(big, 10, "all held"), {}, big, 10),
        (label(small, 200, "100/ch bound decides"), {}, small, 200),
    ]


def overtone_source(args: argparse.Namespace) -> str:
    """Where the server interpreter imports overtone from (PYTHONPATH can point elsewhere)."""
    try:
        done = subprocess.run(
            [args.python, "-c", "import overtone; print(overtone.__file__)"],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    return done.stdout.decode().strip() or done.stderr.decode().strip()[-200:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="overtone history benchmark")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated")
    parser.add_argument("--connections", default="1000,5000", help="fan-out subscriber counts")
    parser.add_argument("--reps", type=int, help="fan-out runs per server (default 3, quick 2)")
    parser.add_argument("--deliveries", type=int, help="per fan-out run (500 000, quick 200 000)")
    parser.add_argument("--latency-reps", type=int, help="latency runs per server (3, quick 2)")
    parser.add_argument("--latency-seconds", type=float, help="per latency run (5, quick 2)")
    parser.add_argument("--channels", type=int, default=10_000, help="memory: channels")
    parser.add_argument("--clients", type=int, default=1000, help="recovery: clients")
    parser.add_argument("--recover-channels", type=int, default=1, help="recovery: channels")
    parser.add_argument("--missed", type=int, default=50, help="recovery: events missed")
    parser.add_argument("--live", type=int, default=10, help="recovery: live during storm")
    parser.add_argument("--rounds", type=int, help="recovery: reconnect storms (3, quick 2)")
    parser.add_argument("--quick", action="store_true", help="shorter phases, fewer repeats")
    parser.add_argument("--timeout", type=float, default=60.0, help="bound for each phase, s")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--python", default=str(ROOT / ".venv/bin/python"), help="for overtone")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="skip taskset")
    args = parser.parse_args(argv)
    quick = args.quick
    for name, full, short in (
        ("reps", 3, 2),
        ("deliveries", 500_000, 200_000),
        ("latency_reps", 3, 2),
        ("latency_seconds", 5.0, 2.0),
        ("rounds", 3, 2),
    ):
        if getattr(args, name) is None:
            setattr(args, name, short if quick else full)
    sections = [s.strip() for s in args.sections.split(",") if s.strip() in SECTIONS]
    counts = [int(c) for c in args.connections.split(",") if c.strip()]
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    started = time.monotonic()
    dropped = [key for key in os.environ if key.startswith("OVERTONE_HISTORY_")]
    for key in dropped:  # "on" means the defaults
        del os.environ[key]
    if dropped:
        print(f"ignoring {', '.join(dropped)} from the environment: history on = defaults")
    if args.pin and (os.cpu_count() or 1) < 2:
        print("a second core is missing: running unpinned", flush=True)
        args.pin = False
    soft, hard = raise_nofile()
    print(f"RLIMIT_NOFILE raised to {soft} (hard cap {hard}); each process needs N + ~150 fds")
    need = 2 * max(counts, default=0) + 200
    if "fanout" in sections and need > hard:
        print(f"warning: the fan-out client holds {need - 200} connections; fd cap {hard}")
    print(f"servers pinned to core 0, load client to core 1: {args.pin}")
    print(f"overtone imported from {overtone_source(args)}", flush=True)
    report: dict[str, Any] = {
        "nofile": [soft, hard],
        "args": {**vars(args), "json": str(args.json)},
    }
    summary: dict[str, Any] = {}
    output: list[str] = []
    with tempfile.TemporaryDirectory(prefix="overtone-history-") as tmp:
        workdir = Path(tmp)
        if "fanout" in sections:
            report["fanout"] = {}
            for i, n in enumerate(counts):
                print(f"... fan-out on vs off: {n} subscribers", flush=True)
                result = run_fanout(args, workdir, n, first=i == 0)
                report["fanout"][str(n)] = result
                figures = fanout_figures(result)
                summary[f"fanout_{n}"] = figures
                output.append(fanout_table(n, result))
                print("\n" + output[-1] + "\n", flush=True)
        if "memory" in sections:
            points: list[tuple[str, dict[str, Any]]] = []
            for label, env, channels, events in memory_points(args):
                print(f"... memory: {label.strip()}", flush=True)
                extra = ["--mode", "memory", "--channels", str(channels)]
                extra += ["--events", str(events)]
                name = f"memory-{channels}-{events}-{len(points)}"
                points.append((label, measure(args, workdir, name, [env], *extra)))
            report["memory"] = dict(points)
            output.append(memory_table(points, HISTORY_MEMORY))
            print("\n" + output[-1] + "\n", flush=True)
            cap = memory_figures(points[0][1], points[1][1])
            summary["memory_cap"] = {k: v for k, v in cap.items() if k != "charged_mb"}
            summary["memory_10_per_channel"] = memory_figures(points[2][1])
        if "recovery" in sections:
            print(f"... recovery: {args.clients} clients", flush=True)
            extra = ["--mode", "recovery", "--connections", str(args.clients)]
            extra += ["--recover-channels", str(args.recover_channels)]
            extra += ["--missed", str(args.missed), "--live", str(args.live)]
            extra += ["--rounds", str(args.rounds)]
            result = measure(args, workdir, "recovery", [{}], *extra)
            result["args"] = {"missed": args.missed, "live": args.live}
            report["recovery"] = result
            summary["recovery"] = recovery_figures(result)
            output.append(recovery_table(result))
            print("\n" + output[-1] + "\n", flush=True)
    elapsed = time.monotonic() - started
    summary["seconds"] = round(elapsed)
    report["summary"] = summary
    print("\n" + "\n\n".join(output))
    print(
        "\nratio = history on / off (lower is better for CPU us and latency); * = partial;"
        " ~ = other processes were busy during that phase (medians skip such runs if they can)."
        "\ncpu cli/srv/wall: load-client CPU s / server CPU s / wall s of that phase."
    )
    print(f"\nhistory benchmark took {elapsed:.0f} s")
    print("summary " + orjson.dumps(rounded(summary)).decode())
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
        print(f"figures written to {args.json}")
    return 0


def rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return value


if __name__ == "__main__":
    sys.exit(main())
