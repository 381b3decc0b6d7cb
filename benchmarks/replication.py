"""Replication benchmark: what one connection made on node A costs the rest of a cluster.

Setups, interleaved ``--repeat`` times, each with fresh processes:

- ``lone``: one ``overtone start`` without scaling (the reference).
- ``pair``: node A and node B joined through one fresh ``redis-server``; every connection is
  made on A, B takes no client at all (it only applies what A tells the cluster).
- with ``--sizes 4,8``: clusters of that many nodes, A and idle receivers, to check that a
  receiver's cost per connection made elsewhere does not grow with the cluster's size (the
  model of docs/scaling.md) and what Redis pays per node.

Every server process (and Redis) is pinned to core 0, the load client to core 1. The client
opens ``--connections`` WebSockets to A, each subscribing to one public channel, and reads,
for that phase alone, the CPU seconds of A, B and Redis and Redis's
``total_commands_processed``. Figures per connection made on A:

- node A's CPU us (target: at most 1.2x the lone node's),
- node B's CPU us (target: at most 5),
- Redis commands (target: at most 0.05),
- the connect+subscribe rate (pair / lone).

    python -m benchmarks.replication              # 10 000 connections, 3 runs per setup
    python -m benchmarks.replication --quick      # 5 000 connections, 1 run
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks.cluster import Redis, scaling_env, stop_server
from benchmarks.loadclient import parse_common
from benchmarks.phases import Ctx, open_conns
from benchmarks.run import ROOT, Server, raise_nofile, run_client

TARGETS = {"a_ratio": 1.2, "b_us": 5.0, "redis_per_conn": 0.05}


def redis_commands(port: int) -> int:
    """``total_commands_processed`` of the Redis on ``port`` (INFO itself included)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"*2\r\n$4\r\nINFO\r\n$5\r\nstats\r\n")
        data = b""
        while b"total_commands_processed:" not in data or not data.endswith(b"\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    for line in data.split(b"\r\n"):
        if line.startswith(b"total_commands_processed:"):
            return int(line.split(b":")[1])
    raise RuntimeError("no total_commands_processed in INFO")


# -- the load client (run pinned to core 1) ---------------------------------------------------


async def client(args: argparse.Namespace) -> dict[str, Any]:
    pids = tuple(int(p) for p in args.pids.split(","))
    ctx = Ctx(args.host, args.port, args.app_id, args.key, args.secret, pids, args.timeout)
    before = redis_commands(args.redis) if args.redis else 0
    result = await open_conns(ctx, args.connections, "bench", args.concurrency)
    await asyncio.sleep(0.05)  # node B applies the last batch (10 ms window + a round trip)
    if args.redis:
        result["redis_commands"] = redis_commands(args.redis) - before - 1  # minus our INFO
    for conn in ctx.conns:
        conn.close()
    await asyncio.sleep(0.2)
    return result


def client_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="replication benchmark client")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pids", required=True, help="A[,B,redis]")
    parser.add_argument("--redis", type=int, default=0, help="Redis port (pair)")
    parser.add_argument("--connections", type=int, default=10_000)
    args = parse_common(parser, argv)
    try:
        import uvloop  # noqa: PLC0415

        result = uvloop.run(client(args))
    except ImportError:
        result = asyncio.run(client(args))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


# -- the driver --------------------------------------------------------------------------------


def measure(nodes: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """One run with ``nodes`` nodes (1: a lone node without Redis)."""
    pair = nodes > 1
    redis: Redis | None = None
    servers: list[Server] = []
    try:
        env: dict[str, str] = {}
        if pair:
            redis = Redis(args.redis_server, workdir, args.pin)
            problem = redis.wait_ready()
            if problem is not None:
                return {"failure": problem}
            env = scaling_env(redis)
        for _ in range(nodes):
            servers.append(Server("overtone", args, workdir, env))
            problem = servers[-1].wait_ready()
            if problem is not None:
                return {"failure": f"overtone did not start: {problem}"}
        time.sleep(1.0 + 0.2 * nodes)  # hello/sync settled
        pids = [s.proc.pid for s in servers] + ([redis.proc.pid] if redis else [])
        cmd = [sys.executable, "-m", "benchmarks.replication", "--client"]
        cmd += ["--port", str(servers[0].port), "--pids", ",".join(map(str, pids))]
        cmd += ["--connections", str(args.connections), "--timeout", str(args.timeout)]
        if redis is not None:
            cmd += ["--redis", str(redis.port)]
        name = f"client-{nodes}-{servers[0].port}.log"
        return run_client(cmd, args.pin, 4 * args.timeout, workdir / name)
    finally:
        for server in servers:
            stop_server(server)
        if redis is not None:
            redis.stop()


def per_connection(result: dict[str, Any]) -> dict[str, float] | None:
    subscribed = result.get("subscribed")
    each = result.get("server_cpu_each")
    if not subscribed or not isinstance(each, list):
        return None
    figures = {"rate": float(result.get("per_second", 0)), "a_us": each[0] / subscribed * 1e6}
    if len(each) >= 3:  # A, the receivers, Redis
        receivers = each[1:-1]
        figures["b_us"] = statistics.median(receivers) / subscribed * 1e6
        figures["b_max_us"] = max(receivers) / subscribed * 1e6
        figures["redis_us"] = each[-1] / subscribed * 1e6
        figures["redis_per_conn"] = result.get("redis_commands", 0) / subscribed
    return figures


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--client"]:
        client_main(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description="overtone replication benchmark")
    parser.add_argument("--connections", type=int, help="made on node A (10 000; quick 5 000)")
    parser.add_argument("--repeat", type=int, help="runs per setup (3; quick 1)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", default="", help="also clusters of these sizes, e.g. 4,8")
    parser.add_argument("--timeout", type=float, default=60.0, help="bound for the phase, s")
    parser.add_argument("--redis-server", default="redis-server")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--python", default=str(ROOT / ".venv/bin/python"), help="for overtone")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="skip taskset")
    args = parser.parse_args(argv)
    args.connections = args.connections or (5_000 if args.quick else 10_000)
    args.repeat = args.repeat or (1 if args.quick else 3)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    soft, hard = raise_nofile()
    print(f"RLIMIT_NOFILE raised to {soft} (hard cap {hard})")
    print(f"servers and Redis pinned to core 0, load client to core 1: {args.pin}")
    sizes = [1, 2, *(int(n) for n in args.sizes.split(",") if n.strip())]
    labels = {1: "lone", 2: "pair"}
    runs: dict[str, list[dict[str, Any]]] = {labels.get(n, f"{n} nodes"): [] for n in sizes}
    with tempfile.TemporaryDirectory(prefix="overtone-replication-") as tmp:
        for rep in range(args.repeat):
            for nodes in sizes if rep % 2 == 0 else sizes[::-1]:
                label = labels.get(nodes, f"{nodes} nodes")
                print(f"... run {rep + 1}: {label}, {args.connections} connections", flush=True)
                result = measure(nodes, args, Path(tmp))
                runs[label].append(result)
                figures = per_connection(result)
                print(f"    {figures if figures else result}", flush=True)
    medians: dict[str, dict[str, float]] = {}
    for label, results in runs.items():
        each = [f for f in map(per_connection, results) if f is not None]
        if each:
            medians[label] = {key: statistics.median(f[key] for f in each) for key in each[0]}
    print(report(medians, args))
    if len(sizes) > 2:
        print(sizes_report(medians, sizes, labels))
    if args.json is not None:
        args.json.write_bytes(orjson.dumps({"runs": runs, "medians": medians}))
    return 0


def report(medians: dict[str, dict[str, float]], args: argparse.Namespace) -> str:
    lone, pair = medians.get("lone"), medians.get("pair")
    if lone is None or pair is None:
        return "no result (see the runs above)"
    a_ratio = pair["a_us"] / lone["a_us"]
    rows = [
        ("node A CPU us per connection", f"{pair['a_us']:.1f}", f"lone {lone['a_us']:.1f}"),
        ("  A / lone", f"{a_ratio:.2f}x", f"target <= {TARGETS['a_ratio']}x"),
        (
            "node B CPU us per connection on A",
            f"{pair['b_us']:.2f}",
            f"target <= {TARGETS['b_us']}",
        ),
        ("Redis CPU us per connection", f"{pair['redis_us']:.2f}", ""),
        (
            "Redis commands per connection",
            f"{pair['redis_per_conn']:.4f}",
            f"target <= {TARGETS['redis_per_conn']}",
        ),
        (
            "connect+subscribe/s",
            f"{pair['rate']:,.0f}",
            f"lone {lone['rate']:,.0f} ({pair['rate'] / lone['rate']:.2f}x)",
        ),
    ]
    width = max(len(row[0]) for row in rows)
    lines = [f"== {args.connections} connect+subscribe on node A, medians of {args.repeat} run(s)"]
    lines += [f"{name:<{width}}  {value:>10}  {note}" for name, value, note in rows]
    return "\n".join(lines)


def sizes_report(
    medians: dict[str, dict[str, float]], sizes: list[int], labels: dict[int, str]
) -> str:
    """Per cluster size: A's, each receiver's (median and worst) and Redis's CPU per
    connection made on A, and the connect rate."""
    lines = [
        "== by cluster size (connections made on A; the other nodes take none)",
        f"{'nodes':>6} {'A us':>8} {'receiver us (median/max)':>26} {'Redis us':>9} {'conn/s':>8}",
    ]
    for nodes in sizes[1:]:
        figures = medians.get(labels.get(nodes, f"{nodes} nodes"))
        if figures is None:
            lines.append(f"{nodes:>6}  no result")
            continue
        receivers = f"{figures['b_us']:.1f} / {figures['b_max_us']:.1f}"
        lines.append(
            f"{nodes:>6} {figures['a_us']:>8.1f} {receivers:>26} {figures['redis_us']:>9.1f}"
            f" {figures['rate']:>8,.0f}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
