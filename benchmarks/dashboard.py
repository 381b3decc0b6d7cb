"""Dashboard benchmark: does an open dashboard slow a busy app down?

Two overtone servers with the dashboard enabled run pinned to core 0, the load client
(``benchmarks.history_client``) to core 1, as in ``benchmarks.run``. A dashboard feed
(``GET /dashboard/api/feed``, the page's live stream) is held open on the first server by a
reader thread of this process for the whole run; the second has none. The client subscribes
N connections to one channel on each and alternates fan-out phases between them (ABBA),
then light-load latency phases: the figures a busy production app cares about, with and
without someone watching. Every published event is traced into the console (then rate
bounded), every second an overview is built and pushed.

    python -m benchmarks.dashboard             # 1 000 and 5 000 subscribers, ~2 min
    python -m benchmarks.dashboard --quick     # shorter phases, fewer repeats
"""

from __future__ import annotations

import argparse
import base64
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks.history_report import OFF, ON, fanout_figures
from benchmarks.run import ROOT, Server, raise_nofile, run_client

PASSWORD = "benchmark-dashboard-password"
SERVER_ENV = {
    "OVERTONE_DASHBOARD_PASSWORD": PASSWORD,
    "REVERB_APP_ACTIVITY_TIMEOUT": "120",  # no ping round in the middle of a phase
}
TARGET = 0.95


class FeedReader(threading.Thread):
    """Holds one dashboard feed open and counts what it receives (a watching browser)."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        credentials = base64.b64encode(f"overtone:{PASSWORD}".encode())
        self.sock.sendall(
            b"GET /dashboard/api/feed HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Authorization: Basic " + credentials + b"\r\n\r\n"
        )
        self.bytes = 0
        self.events: dict[str, int] = {}
        self.entries = 0
        self.stopped = threading.Event()
        self._buffer = b""

    def run(self) -> None:
        self.sock.settimeout(0.5)
        while not self.stopped.is_set():
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            self.bytes += len(chunk)
            self._buffer += chunk
            *blocks, self._buffer = self._buffer.split(b"\n\n")
            for block in blocks:
                self._count(block)

    def _count(self, block: bytes) -> None:
        lines = dict(line.split(b": ", 1) for line in block.split(b"\n") if b": " in line)
        event = lines.get(b"event", b"").decode()
        if not event:
            return
        self.events[event] = self.events.get(event, 0) + 1
        if event == "console":
            self.entries += len(orjson.loads(lines[b"data"])["entries"])

    def stop(self) -> None:
        self.stopped.set()
        self.join(2)
        self.sock.close()


def measure(args: argparse.Namespace, workdir: Path, n: int, first: bool) -> dict[str, Any]:
    """Two servers (first watched), one fan-out client run with labels on (watched) / off."""
    servers: list[Server] = []
    reader: FeedReader | None = None
    try:
        for _ in range(2):
            servers.append(Server("overtone", args, workdir, SERVER_ENV))
        for server in servers:
            problem = server.wait_ready()
            if problem is not None:
                return {"failure": f"overtone did not start: {problem}"}
        reader = FeedReader(servers[0].port)
        reader.start()
        cmd = [sys.executable, "-m", "benchmarks.history_client", "--mode", "fanout"]
        cmd += ["--ports", ",".join(str(s.port) for s in servers)]
        cmd += ["--server-pids", ",".join(str(s.proc.pid) for s in servers)]
        cmd += ["--timeout", str(args.timeout), "--connections", str(n)]
        cmd += ["--labels", f"{ON},{OFF}", "--reps", str(args.reps)]
        cmd += ["--deliveries", str(args.deliveries)]
        if first:
            cmd += ["--latency-reps", str(args.reps), "--latency-seconds", str(args.seconds)]
        result = run_client(cmd, args.pin, 8 * args.timeout, workdir / f"client-{n}.log")
        result["feed"] = {
            "bytes": reader.bytes,
            "events": dict(reader.events),
            "console_entries": reader.entries,
            "open_at_end": reader.is_alive(),
        }
        return result
    finally:
        if reader is not None:
            reader.stop()
        for server in servers:
            server.stop()


def table(n: int, figures: dict[str, Any], feed: dict[str, Any]) -> str:
    def cell(value: Any, fmt: str) -> str:
        return format(value, fmt) if isinstance(value, int | float) else "-"

    lines = [
        f"== {n} subscribers on one channel: dashboard feed open vs none",
        f"{'':28}{'open':>12}{'none':>12}{'ratio':>8}",
        f"{'deliveries/s (median)':28}{cell(figures.get(f'{ON}_per_s'), ',.0f'):>12}"
        f"{cell(figures.get(f'{OFF}_per_s'), ',.0f'):>12}{cell(figures.get('ratio'), '.3f'):>8}",
        f"{'server us per delivery':28}{cell(figures.get(f'{ON}_us_per_delivery'), '.2f'):>12}"
        f"{cell(figures.get(f'{OFF}_us_per_delivery'), '.2f'):>12}",
    ]
    for key in ("p50_ms", "p99_ms"):
        on, off = figures.get(f"{ON}_{key}"), figures.get(f"{OFF}_{key}")
        if on is not None or off is not None:
            ratio = on / off if isinstance(on, float) and isinstance(off, float) and off else None
            lines.append(
                f"{'light-load ' + key:28}{cell(on, '.3f'):>12}{cell(off, '.3f'):>12}"
                f"{cell(ratio, '.3f'):>8}"
            )
    ratio = figures.get("ratio")
    verdict = "ok" if isinstance(ratio, float) and ratio >= TARGET else "MISS"
    lines.append(
        f"fan-out ratio target >= {TARGET}: {verdict} (best runs: {figures.get('best_ratio')})"
    )
    lines.append(
        f"the feed received {feed.get('bytes', 0):,} bytes: {feed.get('events')} "
        f"with {feed.get('console_entries', 0):,} console entries; open at the end: "
        f"{feed.get('open_at_end')}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="overtone dashboard overhead benchmark")
    parser.add_argument("--connections", default="1000,5000", help="subscriber counts")
    parser.add_argument("--reps", type=int, help="runs per server (default 4, quick 2)")
    parser.add_argument("--deliveries", type=int, help="per run (500 000, quick 200 000)")
    parser.add_argument("--seconds", type=float, help="per latency run (5, quick 2)")
    parser.add_argument("--quick", action="store_true", help="shorter phases, fewer repeats")
    parser.add_argument("--timeout", type=float, default=60.0, help="bound for each phase, s")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--python", default=str(ROOT / ".venv/bin/python"), help="for overtone")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="skip taskset")
    args = parser.parse_args(argv)
    for name, full, short in (
        ("reps", 4, 2),
        ("deliveries", 500_000, 200_000),
        ("seconds", 5.0, 2.0),
    ):
        if getattr(args, name) is None:
            setattr(args, name, short if args.quick else full)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    soft, hard = raise_nofile()
    print(f"RLIMIT_NOFILE raised to {soft} (hard cap {hard})")
    print(f"servers pinned to core 0, load client to core 1: {args.pin}", flush=True)
    started = time.monotonic()
    report: dict[str, Any] = {}
    output: list[str] = []
    with tempfile.TemporaryDirectory(prefix="overtone-dashboard-") as tmp:
        for i, n in enumerate(int(c) for c in args.connections.split(",") if c.strip()):
            print(f"... {n} subscribers, feed open vs none", flush=True)
            result = measure(args, Path(tmp), n, first=i == 0)
            if "failure" in result:
                output.append(f"== {n} subscribers: no result: {result['failure']}")
            else:
                figures = fanout_figures(result)
                report[str(n)] = {"figures": figures, "feed": result["feed"]}
                output.append(table(n, figures, result["feed"]))
            print("\n" + output[-1] + "\n", flush=True)
    print("\n" + "\n\n".join(output))
    print(f"\ndashboard benchmark took {time.monotonic() - started:.0f} s")
    print("summary " + orjson.dumps(report).decode())
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
