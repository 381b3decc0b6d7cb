"""Cluster load client: spreads subscribers over several nodes, checks exactly-once delivery.

Like :mod:`benchmarks.loadclient`, but connections are opened round-robin over ``--ports``
(one port per node; the first is the node the HTTP API calls go to), every fan-out and latency
event is counted per connection and per sequence number (duplicates, misses, and strays: events
reaching a connection not subscribed to them), and latency is split between subscribers on the
trigger node and subscribers reached through the other nodes. Prints one JSON object.

    python -m benchmarks.cluster_client --ports 8081,8082,8083 --connections 10000 \\
        --server-pids 101,102,103,104
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import sys
from collections import Counter
from typing import Any

import orjson

from benchmarks.loadclient import log, loop_name, parse_common, phase
from benchmarks.phases import Ctx, api_rate, fanout, finish, latency, open_conns
from benchmarks.procstat import idle_rss, rss_kb
from benchmarks.wsclient import WSConn

LATENCY_SUBSCRIBERS = 100


def numbers(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="overtone cluster benchmark load client")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ports", type=numbers, required=True, help="one per node; 1st: API")
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--server-pids", type=numbers, default=[], help="nodes and Redis")
    args = parse_common(parser, argv)
    ctx = Ctx(
        host=args.host,
        port=args.ports[0],
        app_id=args.app_id,
        key=args.key,
        secret=args.secret,
        server_pid=tuple(args.server_pids),
        timeout=args.timeout,
        ports=args.ports if len(args.ports) > 1 else [],
    )
    try:
        import uvloop  # noqa: PLC0415

        result = uvloop.run(run(ctx, args))
    except ImportError:
        result = asyncio.run(run(ctx, args))
    result["nofile_limit"] = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


def port_of(conn: WSConn) -> int:
    peer = conn.transport.get_extra_info("peername") if conn.transport is not None else None
    return int(peer[1]) if peer else 0


def spread(conns: list[WSConn], ports: list[int]) -> list[WSConn]:
    """The same connections, reordered so that any prefix alternates between the nodes."""
    by_port: dict[int, list[WSConn]] = {port: [] for port in ports}
    for conn in conns:
        by_port.setdefault(port_of(conn), []).append(conn)
    queues = [group[::-1] for group in by_port.values() if group]
    ordered: list[WSConn] = []
    while queues:
        ordered.extend(queue.pop() for queue in queues)
        queues = [queue for queue in queues if queue]
    return ordered


def exactly_once(receivers: list[WSConn], others: list[WSConn], events: int) -> dict[str, int]:
    """Receipts per (connection, event): ``duplicates`` (receipts beyond the first), ``misses``
    (events 0..events-1 never received by a receiver) and ``stray`` (receipts of an unknown
    sequence number, or by a connection not subscribed to the channel)."""
    duplicates = misses = stray = 0
    for conn in receivers:
        seen = conn.seen or bytearray()
        head = seen[:events]
        present = len(head) - head.count(0)
        misses += events - present
        duplicates += sum(head) - present
        stray += sum(seen[events:])
    stray += sum(sum(conn.seen or b"") for conn in others)
    return {"duplicates": duplicates, "misses": misses, "stray": stray}


def pct(samples: list[int], p: float) -> float | None:
    return round(samples[int(p * (len(samples) - 1))] / 1e6, 3) if samples else None


def split_latency(subset: list[WSConn], trigger_port: int) -> dict[str, Any]:
    """p50/p99 for subscribers on the node the API calls go to (``local``) and on the others
    (``remote``: the event reached them through the broker)."""
    local = sorted(s for c in subset if port_of(c) == trigger_port for s in c.lat or [])
    remote = sorted(s for c in subset if port_of(c) != trigger_port for s in c.lat or [])
    return {
        "local_samples": len(local),
        "local_p50_ms": pct(local, 0.5),
        "local_p99_ms": pct(local, 0.99),
        "remote_samples": len(remote),
        "remote_p50_ms": pct(remote, 0.5),
        "remote_p99_ms": pct(remote, 0.99),
    }


async def run(ctx: Ctx, args: argparse.Namespace) -> dict[str, Any]:
    n, quick, ports = args.connections, args.quick, args.ports
    out: dict[str, Any] = {"connections": n, "ports": ports, "loop": loop_name()}
    log(f"cluster: {n} connections over {ctx.host} ports {ports}")
    rss_before = rss_kb(ctx.server_pid)
    try:
        await phase(out, "connect", open_conns(ctx, n, "bench", args.concurrency))
        if not ctx.conns:
            return out
        counts = Counter(port_of(conn) for conn in ctx.conns)
        out["connect"]["per_node"] = [counts.get(port, 0) for port in ports]
        gc.collect()
        gc.freeze()
        await asyncio.sleep(1.0)
        subscribed = len(ctx.conns)
        out["rss"] = idle_rss(ctx.server_pid, rss_before, subscribed)
        events = max(10, (200_000 if quick else 1_000_000) // subscribed)
        for conn in ctx.conns:
            conn.seen = bytearray(events)
        await phase(out, "fanout", fanout(ctx, events, window=max(4, min(64, 40_000 // n))))
        sent = int(out["fanout"].get("events", 0))
        out["fanout"].update(exactly_once(ctx.conns, [], sent))
        log(f"fanout exactly-once: {exactly_once(ctx.conns, [], sent)}")
        ctx.conns[:] = spread(ctx.conns, ports)  # latency subscribers alternate between nodes
        subset = ctx.conns[:LATENCY_SUBSCRIBERS]
        for conn in ctx.conns:
            conn.seen = bytearray()
        for conn in subset:
            conn.lat = []
        seconds = 2 if quick else 5
        await phase(out, "latency", latency(ctx, LATENCY_SUBSCRIBERS, rate=20, seconds=seconds))
        sent = int(out["latency"].get("events", 0))
        out["latency"].update(exactly_once(subset, ctx.conns[LATENCY_SUBSCRIBERS:], sent))
        out["latency"].update(split_latency(subset, ports[0]))
        log(f"latency split: {out['latency']}")
        for conn in ctx.conns:
            conn.seen = None
        await phase(out, "api", api_rate(ctx, inflight=16, seconds=seconds))
    finally:
        await finish(ctx, out)
    return out


if __name__ == "__main__":
    main()
