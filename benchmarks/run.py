"""Benchmark runner: overtone against the raw-asyncio reference, one server at a time.

Each server runs as a subprocess pinned to core 0 (``taskset -c 0``) on a free 127.0.0.1 port;
the load client (``benchmarks.loadclient``) runs pinned to core 1 and reports its own CPU time.

    python -m benchmarks.run                       # 1 000 and 10 000 connections, both servers
    python -m benchmarks.run --quick --target reference --connections 1000
    python -m benchmarks.run --json out.json
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from benchmarks import native
from benchmarks.localprocs import free_port, stop_process, up
from benchmarks.report import hold_table, table

ROOT = Path(__file__).resolve().parent.parent
APP_ENV = {
    "REVERB_APP_ID": "bench",
    "REVERB_APP_KEY": "bench-key",
    "REVERB_APP_SECRET": "bench-secret",
}


def raise_nofile() -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def pinned(core: int, cmd: list[str], pin: bool) -> list[str]:
    return ["taskset", "-c", str(core), *cmd] if pin else cmd


def run_client(cmd: list[str], pin: bool, budget: float, log_path: Path) -> dict[str, Any]:
    """Run a load client on core 1 (bounded by ``budget`` s); its last stdout line is JSON.

    Returns that JSON object, or ``{"failure": reason}``; the client's stderr goes to
    ``log_path``.
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        done = subprocess.run(
            pinned(1, cmd, pin), env=env, capture_output=True, timeout=budget, check=False
        )
    except subprocess.TimeoutExpired:
        return {"failure": f"load client still running after {budget:.0f} s; killed"}
    log_path.write_bytes(done.stderr)
    lines = done.stdout.decode().strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"failure": f"load client exit {done.returncode}: {done.stderr[-600:]!r}"}
    result: dict[str, Any] = orjson.loads(lines[-1])
    return result


class Server:
    """One server subprocess; stopped by its own PID (taskset execs, so the PID is Python's)."""

    def __init__(
        self,
        target: str,
        args: argparse.Namespace,
        workdir: Path,
        extra: dict[str, str],
        argv: Sequence[str] = (),
    ):
        self.port = free_port()
        bind = ["--host", "127.0.0.1", "--port", str(self.port)]
        env = {**os.environ, **APP_ENV, **extra}
        if target == "overtone":
            cmd = [args.python, "-m", "overtone", "start", *bind, *argv]
        else:
            cmd = [sys.executable, "-m", "benchmarks.reference_server", *bind]
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        self.log = workdir / f"{target}-{self.port}.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                pinned(0, cmd, args.pin), cwd=workdir, env=env, stdout=log, stderr=log
            )

    def wait_ready(self, seconds: float = 20.0) -> str | None:
        """None when the server answers; else why not."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"exited with {self.proc.returncode}: {self.tail()}"
            if up(self.port):
                return None
            if b"Starting server on" in self.log.read_bytes() and self.accepts():
                return None
            time.sleep(0.05)
        return f"not ready after {seconds:.0f} s: {self.tail()}"

    def accepts(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.5):
            return True
        return False

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-600:].strip()

    def stop(self) -> None:
        stop_process(self.proc)


def measure(
    target: str, n: int, mode: str, args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    """Start a server, run the load client against it once, stop the server."""
    extra = {}
    if mode == "hold":
        timeout = str(args.activity_timeout)
        extra = {"REVERB_APP_ACTIVITY_TIMEOUT": timeout, "REVERB_APP_PING_INTERVAL": timeout}
    server = Server(target, args, workdir, extra)
    try:
        problem = server.wait_ready()
        if problem is not None:
            return {"failure": f"{target} did not start: {problem}"}
        cmd = [sys.executable, "-m", "benchmarks.loadclient", "--port", str(server.port)]
        cmd += ["--connections", str(n), "--server-pid", str(server.proc.pid), "--mode", mode]
        cmd += ["--timeout", str(args.timeout), "--hold", str(args.hold)]
        cmd += ["--quick"] if args.quick else []
        budget = 6 * args.timeout + args.hold + 60
        log_path = workdir / f"client-{target}-{n}-{mode}.log"
        result = run_client(cmd, args.pin, budget, log_path)
        if "failure" in result:
            return result
        if server.proc.poll() is not None:
            result["failure"] = f"server exited with {server.proc.returncode}: {server.tail()}"
        return result
    finally:
        server.stop()


def measure_native(
    target: str, n: int, args: argparse.Namespace, workdir: Path, binary: Path
) -> dict[str, Any]:
    """connect+subscribe, fan-out and signed API requests by the compiled client, on a fresh
    server (so its heap does not carry the Python client's connections, nor they its RSS
    figure), with the same amounts as the Python client's phases."""
    server = Server(target, args, workdir, {})
    try:
        problem = server.wait_ready()
        if problem is not None:
            return {"failure": f"{target} did not start: {problem}"}
        seconds = 2 if args.quick else 5
        events = max(10, (200_000 if args.quick else 1_000_000) // n)
        window = max(4, min(64, 40_000 // n))
        argv = ["bench", str(server.port), "bench", "bench-key", "bench-secret", str(n)]
        argv += [str(events), str(window), str(seconds), str(args.timeout)]
        keys = [("connect", "done"), ("fanout", "deliveries"), ("api", "requests")]
        budget = 3 * args.timeout + 60
        return native.phases(binary, argv, server.proc.pid, args.pin, budget, keys)
    finally:
        server.stop()


def measured(
    target: str, n: int, args: argparse.Namespace, workdir: Path, binary: Path | None
) -> dict[str, Any]:
    """Every figure of one run: the Python client's phases, with connect+subscribe, fan-out
    and the API rate from the compiled client when it is available (the Python client's
    kept as ``connect_py``, ``fanout_py`` and ``api_py``)."""
    result = measure(target, n, "bench", args, workdir)
    if binary is None or "failure" in result:
        return result
    compiled = measure_native(target, n, args, workdir, binary)
    if "failure" in compiled:
        result["native_failure"] = compiled["failure"]
        return result
    for phase in ("connect", "fanout", "api"):
        if phase in compiled and "error" not in compiled[phase]:
            result[f"{phase}_py"] = result.get(phase)
            result[phase] = compiled[phase]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="overtone benchmark suite")
    parser.add_argument("--connections", default="1000,10000", help="comma-separated counts")
    parser.add_argument("--quick", action="store_true", help="shorter phases and hold")
    parser.add_argument("--target", choices=("overtone", "reference", "both"), default="both")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--hold", type=float, help="hold seconds at the largest count")
    parser.add_argument("--activity-timeout", type=int, default=5, help="for the hold phase")
    parser.add_argument("--timeout", type=float, default=60.0, help="bound for each phase, s")
    parser.add_argument("--repeat", type=int, default=1, help="runs per server, interleaved")
    parser.add_argument("--python", default=str(ROOT / ".venv/bin/python"), help="for overtone")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="skip taskset")
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the running server and load client are stopped too
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if args.hold is None:  # past activity_timeout + the 30 s pong wait, unless quick
        args.hold = args.activity_timeout + (7.0 if args.quick else 35.0)
    counts = [int(c) for c in args.connections.split(",") if c.strip()]
    if args.hold <= args.activity_timeout:
        print(f"note: hold {args.hold:.0f} s <= activity timeout: no server ping will be seen")
    servers = ["overtone", "reference"] if args.target == "both" else [args.target]
    if args.pin and (shutil.which("taskset") is None or (os.cpu_count() or 1) < 2):
        print("taskset or a second core missing: running unpinned", flush=True)
        args.pin = False
    soft, hard = raise_nofile()
    print(f"RLIMIT_NOFILE raised to {soft} (hard cap {hard}); each process needs N + ~150 fds")
    if max(counts) + 200 > hard:
        print(f"warning: {max(counts)} connections exceed the fd cap {hard}", flush=True)
    print(f"servers pinned to core 0, load client to core 1: {args.pin}", flush=True)
    binary, why = native.build()
    if binary is None:
        print(f"compiled client unavailable, the Python client measures every phase: {why}")
    else:
        print(
            f"connect+subscribe, fan-out and the API rate measured by the compiled client {binary}"
        )
    report: dict[str, Any] = {"nofile": [soft, hard], "bench": {}, "hold": {}}
    report["args"] = {**vars(args), "json": str(args.json)}
    output: list[str] = []
    with tempfile.TemporaryDirectory(prefix="overtone-bench-") as tmp:
        workdir = Path(tmp)
        for n in counts:
            results: dict[str, list[dict[str, Any]]] = {target: [] for target in servers}
            for repeat in range(max(1, args.repeat)):
                for target in servers:
                    print(f"... {target}: {n} connections, run {repeat + 1}", flush=True)
                    results[target].append(measured(target, n, args, workdir, binary))
            report["bench"][str(n)] = results
            output.append(table(n, results))
            print("\n" + output[-1] + "\n", flush=True)
        held: dict[str, list[dict[str, Any]]] = {}
        for target in servers:
            print(f"... {target}: hold {max(counts)} connections {args.hold:.0f} s", flush=True)
            held[target] = [measure(target, max(counts), "hold", args, workdir)]
        report["hold"] = {str(max(counts)): held}
        output.append(hold_table(max(counts), args.hold, held))
    print("\n" + "\n\n".join(output))
    print(
        "\nratio = overtone / reference (lower is better for RSS, latency, CPU us); * = partial;"
        " ~ = other processes were busy during that phase (medians skip such runs if they can)."
        "\ncpu cli/srv/wall: load-client CPU s / server CPU s / wall s of that phase; a client"
        " CPU near wall means the client, not the server, was the limit."
    )
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
