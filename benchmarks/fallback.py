"""The HTTP fallback against WebSockets: memory per idle session, fan-out, latency.

For each transport a fresh ``overtone start`` (pinned to core 0, as in ``benchmarks.run``)
and ``benchmarks.fallback_client`` pinned to core 1: ``--connections`` WebSockets, then as
many ``xhr_streaming`` sessions, subscribe to ``bench``; the server's RSS growth per session,
fan-out deliveries/s over all of them, and publish-to-receipt latency on 100 of them
(20 events/s). ``xhr_polling`` sessions (``--polling``, 100 by default) get the latency phase
only: a poll answers once per event, so fan-out to many of them measures request handling.

    python -m benchmarks.fallback                      # 1 000 sessions each, ~1 min
    python -m benchmarks.fallback --connections 200 --quick
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.report import dig, is_num, number
from benchmarks.run import ROOT, Server, raise_nofile, run_client


def measure(
    transport: str, n: int, args: argparse.Namespace, workdir: Path, fanout: bool
) -> dict[str, Any]:
    server = Server("overtone", args, workdir, {})
    try:
        problem = server.wait_ready()
        if problem is not None:
            return {"failure": problem}
        cmd = [sys.executable, "-m", "benchmarks.fallback_client", "--port", str(server.port)]
        cmd += ["--server-pid", str(server.proc.pid), "--transport", transport]
        cmd += ["--connections", str(n), "--timeout", str(args.timeout)]
        cmd += ["--deliveries", str(100_000 if args.quick else 500_000)]
        cmd += ["--seconds", "2" if args.quick else "5"]
        cmd += [] if fanout else ["--no-fanout"]
        log = workdir / f"client-{transport}.log"
        return run_client(cmd, args.pin, 4 * args.timeout + 60, log)
    finally:
        server.stop()


def cpu(result: dict[str, Any], phase: str) -> str:
    figures = dig(result, phase)
    if not isinstance(figures, dict) or "wall" not in figures:
        return "-"
    return f"{figures['client_cpu']:.2f}/{figures['server_cpu']:.2f}/{figures['wall']:.2f}"


def table(results: dict[str, dict[str, Any]], n: int, polling: int) -> str:
    ws, stream, poll = results["ws"], results["xhr_streaming"], results["xhr_polling"]
    rows = [
        ("KB per idle subscribed session", "rss", "kb_per_conn", 2),
        ("fan-out deliveries /s", "fanout", "per_second", 0),
        ("  server CPU us per delivery", "fanout", "server_us_per_op", 2),
        ("latency p50 ms (100 subs, 20/s)", "latency", "p50_ms", 3),
        ("latency p99 ms (100 subs, 20/s)", "latency", "p99_ms", 3),
    ]
    head = f"{'':<34}{'ws':>10}{'streaming':>11}{'ratio':>7}{'polling':>10}"
    lines = [
        f"== {n} WebSockets, {n} xhr_streaming sessions, {polling} xhr_polling sessions ==",
        head + f"   {'cpu cli/srv/wall: ws':>22}{'streaming':>18}{'polling':>18}",
    ]
    for label, phase, figure, digits in rows:
        a, b, c = (dig(r, phase, figure) for r in (ws, stream, poll))
        ratio = f"{b / a:.2f}" if is_num(a) and is_num(b) and a else "-"
        line = f"{label:<34}{number(a, digits):>10}{number(b, digits):>11}{ratio:>7}"
        line += f"{number(c, digits):>10}"
        if not label.startswith(" ") and phase != "rss":
            line += f"   {cpu(ws, phase):>22}{cpu(stream, phase):>18}{cpu(poll, phase):>18}"
        lines.append(line)
    for name, result in results.items():
        for problem in ("failure", "client_errors"):
            value = result.get(problem)
            if value and (problem == "failure" or value.get("errors") or value.get("dropped")):
                lines.append(f"  {name}: {problem} {value}")
    lines.append(
        "ratio = streaming / ws (goals: fan-out >= 0.5, memory <= 2); cpu: load-client CPU s /"
        " server CPU s / wall s; a client CPU near wall means the client was the limit."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--polling", type=int, default=100)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--python", default=str(ROOT / ".venv/bin/python"), help="for overtone")
    parser.add_argument("--no-pin", dest="pin", action="store_false")
    args = parser.parse_args(argv)
    soft, hard = raise_nofile()
    print(f"RLIMIT_NOFILE raised to {soft} (hard cap {hard}); a session needs two descriptors")
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="overtone-fallback-") as tmp:
        workdir = Path(tmp)
        for transport, n, fanout in (
            ("ws", args.connections, True),
            ("xhr_streaming", args.connections, True),
            ("xhr_polling", args.polling, False),
        ):
            print(f"... {transport}: {n} sessions", flush=True)
            results[transport] = measure(transport, n, args, workdir, fanout)
    print("\n" + table(results, args.connections, args.polling))
    return 0


if __name__ == "__main__":
    sys.exit(main())
