"""Cluster benchmark: overtone nodes joined through a real Redis, against one node.

Two scenarios, in one run (``--scenario nodes|workers|both``):

- ``nodes``: one node without scaling (the setup of ``benchmarks.run``) against ``--nodes`` 3
  separate ``overtone start`` processes on three ports, joined through one ``redis-server``.
  Every server process (the nodes and Redis) is pinned to core 0, the load client to core 1,
  so both setups get the same total CPU on the server side.
- ``workers``: ``overtone start --workers 2`` against one worker, scaling on in both, one Redis.
  Workers and Redis are not pinned (two workers need both cores); the load client is pinned
  to core 1 and so competes with whatever the kernel schedules there.

Each measurement starts its own Redis (``--save "" --appendonly no``, 127.0.0.1, a free port)
and its own servers, runs ``benchmarks.cluster_client`` and stops everything by PID.

    python -m benchmarks.cluster                  # both scenarios, 10 000 subscribers
    python -m benchmarks.cluster --scenario nodes --quick --repeat 3 --json cluster.json
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from benchmarks.cluster_report import nodes_table, workers_table
from benchmarks.localprocs import free_port, ping_redis
from benchmarks.procstat import process_tree
from benchmarks.run import ROOT, Server, pinned, raise_nofile, run_client


@dataclass(frozen=True)
class Setup:
    name: str  # the column label
    nodes: int = 1  # separate ``overtone start`` processes, one port each
    workers: int = 1  # ``overtone start --workers``
    redis: bool = False  # scaling on, through a fresh redis-server
    pin: bool = True  # every server process (and Redis) on core 0


SCENARIOS = {
    "nodes": lambda a: (Setup(f"{a.nodes} nodes", nodes=a.nodes, redis=True), Setup("1 node")),
    "workers": lambda a: (
        Setup(f"{a.workers} workers", workers=a.workers, redis=True, pin=False),
        Setup("1 worker", redis=True, pin=False),
    ),
}


class Redis:
    """A throw-away redis-server on 127.0.0.1 (no persistence), stopped by its PID."""

    def __init__(self, binary: str, workdir: Path, pin: bool) -> None:
        self.port = free_port()
        self.log = workdir / f"redis-{self.port}.log"
        cmd = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        cmd += ["--appendonly", "no", "--dir", str(workdir), "--logfile", str(self.log)]
        self.proc = subprocess.Popen(pinned(0, cmd, pin), stdout=subprocess.DEVNULL)

    def wait_ready(self, seconds: float = 10.0) -> str | None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"redis-server exited with {self.proc.returncode}"
            if ping_redis(self.port):
                return None
            time.sleep(0.05)
        return f"redis-server not ready after {seconds:.0f} s"

    def stop(self) -> None:
        stop_pid(self.proc)


def scaling_env(redis: Redis) -> dict[str, str]:
    """The environment that joins a node to the cluster on ``redis`` (its own prefix)."""
    return {
        "REVERB_SCALING_ENABLED": "true",
        "REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
        "REDIS_PREFIX": f"bench{redis.port}:",
    }


def stop_pid(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def stop_server(server: Server) -> None:
    """Stop a node (a ``--workers`` supervisor drains its workers), then any worker left."""
    children = process_tree(server.proc.pid)[1:]
    server.stop()
    for pid in children:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            if b"overtone" in cmdline.read():
                os.kill(pid, signal.SIGKILL)


def workers_ready(server: Server, count: int, seconds: float = 30.0) -> str | None:
    """With ``--workers``, /up answers once the first worker listens: wait for all of them."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.log.read_bytes().count(b" ready (pid ") >= count:
            return None
        if server.proc.poll() is not None:
            return f"exited with {server.proc.returncode}: {server.tail()}"
        time.sleep(0.05)
    return f"{count} workers not ready after {seconds:.0f} s: {server.tail()}"


def measure(setup: Setup, n: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Start Redis and the nodes of ``setup``, run the cluster load client once, stop all."""
    redis = Redis(args.redis_server, workdir, args.pin and setup.pin) if setup.redis else None
    servers: list[Server] = []
    try:
        problem = redis.wait_ready() if redis is not None else None
        if problem is not None:
            return {"failure": problem}
        extra = scaling_env(redis) if redis is not None else {}
        node_args = argparse.Namespace(python=args.python, pin=args.pin and setup.pin)
        argv = ["--workers", str(setup.workers)] if setup.workers > 1 else []
        for _ in range(setup.nodes):
            servers.append(Server("overtone", node_args, workdir, extra, argv))
        for server in servers:
            problem = server.wait_ready()
            if problem is None and setup.workers > 1:
                problem = workers_ready(server, setup.workers)
            if problem is not None:
                return {"failure": f"{setup.name}: node did not start: {problem}"}
        # the nodes (with --workers: the workers, not their idle supervisor), then Redis
        skip = 1 if setup.workers > 1 else 0
        pids = [pid for s in servers for pid in process_tree(s.proc.pid)[skip:]]
        pids += [redis.proc.pid] if redis is not None else []
        cmd = [sys.executable, "-m", "benchmarks.cluster_client", "--connections", str(n)]
        cmd += ["--ports", ",".join(str(s.port) for s in servers)]
        cmd += ["--server-pids", ",".join(map(str, pids)), "--timeout", str(args.timeout)]
        cmd += ["--quick"] if args.quick else []
        log_path = workdir / f"client-{setup.name.replace(' ', '-')}.log"
        result = run_client(cmd, args.pin, 6 * args.timeout + 60, log_path)
        if "failure" in result:
            return result
        result["setup"] = asdict(setup)
        result["pids"] = pids
        for server in servers:
            if server.proc.poll() is not None:
                result["failure"] = f"a node exited with {server.proc.returncode}: {server.tail()}"
        return result
    finally:
        for server in servers:
            stop_server(server)
        if redis is not None:
            redis.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="overtone cluster benchmark")
    parser.add_argument("--scenario", choices=("nodes", "workers", "both"), default="both")
    parser.add_argument("--connections", type=int, default=10_000, help="subscribers")
    parser.add_argument("--nodes", type=int, default=3, help="nodes in the nodes scenario")
    parser.add_argument("--workers", type=int, default=2, help="--workers in that scenario")
    parser.add_argument("--quick", action="store_true", help="shorter phases")
    parser.add_argument("--repeat", type=int, default=1, help="runs per setup, interleaved")
    parser.add_argument("--timeout", type=float, default=60.0, help="bound for each phase, s")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--python", default=str(ROOT / ".venv/bin/python"), help="for overtone")
    parser.add_argument("--redis-server", default="/usr/bin/redis-server")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="skip taskset")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if args.pin and (os.cpu_count() or 1) < 2:
        print("a second core is missing: running unpinned", flush=True)
        args.pin = False
    soft, hard = raise_nofile()
    print(f"RLIMIT_NOFILE raised to {soft} (hard cap {hard}); each process needs N + ~150 fds")
    if args.connections + 200 > hard:
        print(f"warning: {args.connections} connections exceed the fd cap {hard}", flush=True)
    names = ["nodes", "workers"] if args.scenario == "both" else [args.scenario]
    report: dict[str, Any] = {
        "nofile": [soft, hard],
        "args": {**vars(args), "json": str(args.json)},
    }
    output: list[str] = []
    with tempfile.TemporaryDirectory(prefix="overtone-cluster-") as tmp:
        for name in names:
            setups = SCENARIOS[name](args)
            runs: dict[str, list[dict[str, Any]]] = {setup.name: [] for setup in setups}
            for repeat in range(max(1, args.repeat)):
                for setup in setups:
                    print(f"... {name}: {setup.name}, run {repeat + 1}", flush=True)
                    runs[setup.name].append(measure(setup, args.connections, args, Path(tmp)))
            report[name] = runs
            draw = nodes_table if name == "nodes" else workers_table
            output.append(draw(args, runs, (setups[0].name, setups[1].name)))
            print("\n" + output[-1] + "\n", flush=True)
    print("\n" + "\n\n".join(output))
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
