"""Soak: N connections on a 3-node cluster for M minutes, with reconnect churn; resources flat,
counts exact, no ghost members.

Three ``overtone start`` nodes share one fresh ``redis-server`` (no persistence). N
connections are spread over the nodes: half subscribe to presence channels (each its own user
id, ``--presence-size`` members per channel), the rest to public channels (``--public-size``
subscribers each). Events are published at a steady rate (``--rate``, each to one channel in
turn, round-robin over the nodes, signed HTTP API). Every second ``--churn`` of the connections
are closed and opened again (same channel and user, on a node chosen at random): half with a
close frame, half abruptly (the socket closed without one). Every ``--sample`` seconds:

- RSS and CPU% of each node and of Redis (``/proc``), and of this client;
- what each node reports (signed ``/connections``, ``/channels?info=subscription_count``,
  ``/channels?filter_by_prefix=presence-&info=user_count``) against the client's truth
  (connections open, subscriptions acknowledged): the error is the sum of the absolute
  differences over the channels (a count in flight between a node and Redis shows up here).

At the end the churn and the publishing stop, and every node is polled until its counts and
every presence channel's users equal the truth (bounded by ``--settle``): ghost members are
users a node lists that are not connected, missing ones the reverse.

    python -m benchmarks.soak --minutes 10 --connections 10000
    python -m benchmarks.soak --minutes 1 --connections 1000      # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.credentials import BENCH_APP, Creds, api_get
from benchmarks.localprocs import NodeProc, RedisProc, cluster_env
from benchmarks.procstat import cpu_of, machine_cpu, own_cpu, rss_kb
from benchmarks.soak_clients import Soak, Truth


def reported(creds: Creds, port: int) -> dict[str, Any]:
    """One node's view (blocking)."""
    base = f"/apps/{creds.app_id}"
    subs = api_get(creds, port, f"{base}/channels", {"info": "subscription_count"})["channels"]
    users = api_get(
        creds, port, f"{base}/channels", {"filter_by_prefix": "presence-", "info": "user_count"}
    )["channels"]
    return {
        "connections": int(api_get(creds, port, f"{base}/connections")["connections"]),
        "subs": {name: int(info.get("subscription_count", 0)) for name, info in subs.items()},
        "users": {name: int(info.get("user_count", 0)) for name, info in users.items()},
    }


def count_error(view: dict[str, Any], truth: Truth) -> dict[str, int]:
    subs = {k: v for k, v in truth.subs.items() if v}
    users = {k: len(v) for k, v in truth.users.items() if v}
    names = set(subs) | set(view["subs"])
    user_names = set(users) | set(view["users"])
    return {
        "connections": view["connections"] - truth.connections,
        "subs": sum(abs(view["subs"].get(k, 0) - subs.get(k, 0)) for k in names),
        "users": sum(abs(view["users"].get(k, 0) - users.get(k, 0)) for k in user_names),
    }


def ghosts(creds: Creds, port: int, truth: Truth) -> tuple[int, int]:
    """(users listed but not connected, users connected but not listed) on one node."""
    extra = missing = 0
    for channel, present in truth.users.items():
        path = f"/apps/{creds.app_id}/channels/{channel}/users"
        listed = {str(user["id"]) for user in api_get(creds, port, path)["users"]}
        extra += len(listed - present)
        missing += len(present - listed)
    return extra, missing


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y) points (0.0 with fewer than two)."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0


async def soak(args: argparse.Namespace, nodes: list[NodeProc], redis: RedisProc) -> dict[str, Any]:
    creds = BENCH_APP
    run = Soak(args, [node.port for node in nodes], creds)
    names = [f"node{i + 1}" for i in range(len(nodes))] + ["redis", "client"]
    pids = [node.pid for node in nodes] + [redis.pid]
    print(f"connecting {len(run.slots)} ({len(run.channels)} channels) ...", flush=True)
    took = await run.connect_all()
    print(
        f"{run.truth.connections} connected, {sum(run.truth.subs.values())} subscribed "
        f"in {took:.1f} s",
        flush=True,
    )
    stop = asyncio.Event()
    workers = [asyncio.ensure_future(run.churn(stop)), asyncio.ensure_future(run.publish(stop))]
    samples: list[dict[str, Any]] = []
    header = (
        f"{'t s':>6} "
        + " ".join(f"{n + ' MiB':>11}" for n in names[:-1])
        + " "
        + " ".join(f"{n + ' %':>9}" for n in names)
        + f" {'other %':>8} {'conns':>6} {'err c/s/u':>10} {'ev/s':>8} {'reconn':>7}"
    )
    print(header, flush=True)
    start = time.monotonic()
    last_cpu = [cpu_of(pid) for pid in pids] + [own_cpu()]
    last_t = start
    last_events = 0
    busy0 = last_busy = machine_cpu().get("busy", 0.0)
    try:
        while time.monotonic() - start < args.minutes * 60:
            await asyncio.sleep(args.sample)
            now = time.monotonic()
            cpu = [cpu_of(pid) for pid in pids] + [own_cpu()]
            busy = machine_cpu().get("busy", 0.0)
            ours = sum(c - b for c, b in zip(cpu, last_cpu, strict=True))
            other = round(100 * max(0.0, busy - last_busy - ours) / (now - last_t), 1)
            pct = [
                round(100 * (c - b) / (now - last_t), 1) for c, b in zip(cpu, last_cpu, strict=True)
            ]
            rss = [round(rss_kb(pid) / 1024, 1) for pid in pids]
            views = await asyncio.gather(
                *(asyncio.to_thread(reported, creds, node.port) for node in nodes),
                return_exceptions=True,
            )
            errors = [
                count_error(view, run.truth) if isinstance(view, dict) else {"failed": 1}
                for view in views
            ]
            worst = {
                key: max(abs(e.get(key, 0)) for e in errors)
                for key in ("connections", "subs", "users")
            }
            events = run.stats.counted - last_events
            sample = {
                "t": round(now - start, 1),
                "rss_mib": dict(zip(names, rss, strict=False)),
                "cpu_pct": dict(zip(names, pct, strict=True)),
                "other_cpu_pct": other,
                "truth_connections": run.truth.connections,
                "reported_connections": [
                    v["connections"] if isinstance(v, dict) else None for v in views
                ],
                "count_error": worst,
                "events_per_s": round(events / (now - last_t)),
                "reconnects": run.reconnects,
            }
            samples.append(sample)
            print(
                f"{sample['t']:>6.0f} "
                + " ".join(f"{r:>11.1f}" for r in rss)
                + " "
                + " ".join(f"{p:>9.1f}" for p in pct)
                + f" {other:>8.1f} {run.truth.connections:>6} "
                + f"{worst['connections']}/{worst['subs']}/{worst['users']:<4}".rjust(10)
                + f" {sample['events_per_s']:>8} {run.reconnects:>7}",
                flush=True,
            )
            last_cpu, last_t, last_events, last_busy = cpu, now, run.stats.counted, busy
    finally:
        stop.set()
        await asyncio.gather(*workers, return_exceptions=True)
    busy = machine_cpu().get("busy", 0.0) - busy0
    # Churn and publishing stopped: every node must come to the exact truth.
    settle_start = time.monotonic()
    final: list[Any] = []
    exact = False
    while time.monotonic() - settle_start < args.settle:
        await asyncio.sleep(1.0)
        final = await asyncio.gather(
            *(asyncio.to_thread(reported, creds, node.port) for node in nodes),
            return_exceptions=True,
        )
        errs = [count_error(v, run.truth) if isinstance(v, dict) else None for v in final]
        if all(e is not None and not any(e.values()) for e in errs):
            exact = True
            break
    settled_after = round(time.monotonic() - settle_start, 1)
    ghost = [await asyncio.to_thread(ghosts, creds, node.port, run.truth) for node in nodes]
    final_errors = [count_error(v, run.truth) if isinstance(v, dict) else repr(v) for v in final]
    after_rss = [round(rss_kb(pid) / 1024, 1) for pid in pids]
    for slot in run.slots:
        if slot.conn is not None:
            slot.conn.end(False)
    await asyncio.sleep(0.5)
    return {
        "connections": len(run.slots),
        "channels": len(run.channels),
        "connect_seconds": round(took, 1),
        "samples": samples,
        "published": run.published,
        "api_failures": run.api_failures,
        "reconnects": run.reconnects,
        "dropped_by_server": run.truth.dropped,
        "failed_connections": run.truth.failed,
        "client_errors": dict(run.truth.errors),
        "settled_exact": exact,
        "settled_after": settled_after,
        "final_errors": final_errors,
        "ghosts_missing": ghost,
        "rss_after_settle_mib": dict(zip(names, after_rss, strict=False)),
        "machine_busy_cores": round(busy / (args.minutes * 60), 2),
    }


def verdict(result: dict[str, Any], warmup: float) -> str:
    samples = result["samples"]
    later = [s for s in samples if s["t"] >= warmup] or samples
    half = samples[len(samples) // 2 :] or samples
    lines = []
    for name in later[0]["rss_mib"]:
        rss = [(s["t"] / 60, s["rss_mib"][name]) for s in later]
        rss_half = [(s["t"] / 60, s["rss_mib"][name]) for s in half]
        cpu = [(s["t"] / 60, s["cpu_pct"][name]) for s in later]
        lines.append(
            f"{name:>7}: RSS {later[0]['rss_mib'][name]:.1f} -> {later[-1]['rss_mib'][name]:.1f} "
            f"MiB ({slope(rss):+.2f} MiB/min after {warmup:.0f} s, {slope(rss_half):+.2f} over "
            f"the second half), CPU {later[0]['cpu_pct'][name]:.1f} -> "
            f"{later[-1]['cpu_pct'][name]:.1f} % ({slope(cpu):+.2f} %/min)"
        )
    cpu = [(s["t"] / 60, s["cpu_pct"]["client"]) for s in later]
    lines.append(f" client: CPU trend {slope(cpu):+.2f} %/min")
    worst = {k: max(s["count_error"][k] for s in samples) for k in ("connections", "subs", "users")}
    lines.append(
        f"max count error during churn (any node, sum over channels): connections "
        f"{worst['connections']}, subscriptions {worst['subs']}, presence users {worst['users']}"
    )
    lines.append(
        f"after churn stopped: counts {'exact' if result['settled_exact'] else 'NOT exact'} "
        f"after {result['settled_after']} s {result['final_errors']}; ghost/missing members per "
        f"node {result['ghosts_missing']}"
    )
    lines.append(
        f"published {result['published']} (API failures {result['api_failures']}), "
        f"reconnects {result['reconnects']}, dropped by the server {result['dropped_by_server']}, "
        f"failed connections {result['failed_connections']}, client errors "
        f"{result['client_errors']}, machine busy {result['machine_busy_cores']} cores"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="overtone cluster soak")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--churn", type=float, default=0.02, help="share reopened per second")
    parser.add_argument("--rate", type=float, default=20.0, help="events published per second")
    parser.add_argument("--presence-size", type=int, default=50, help="members per channel")
    parser.add_argument("--public-size", type=int, default=100, help="subscribers per channel")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=120.0, help="s before the trends")
    parser.add_argument("--settle", type=float, default=60.0, help="bound of the final wait, s")
    parser.add_argument("--concurrency", type=int, default=200, help="handshakes in flight")
    parser.add_argument("--json", type=Path, help="write the samples and figures here")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the nodes inherit it
    print(f"RLIMIT_NOFILE raised from {soft} to {hard} (the hard cap)", flush=True)
    if args.connections + 200 > hard:
        args.connections = hard - 200
        print(f"connections capped at {args.connections} by RLIMIT_NOFILE", flush=True)
    with tempfile.TemporaryDirectory(prefix="overtone-soak-") as tmp:
        redis = RedisProc(Path(tmp))
        redis.start()
        env = cluster_env(BENCH_APP, redis.url, f"soak{redis.port}:")
        env.update(OVERTONE_HEARTBEAT_INTERVAL="1", OVERTONE_NODE_TIMEOUT="5")
        nodes = [NodeProc(Path(tmp), env) for _ in range(args.nodes)]
        try:
            for node in nodes:
                node.start()
            try:
                import uvloop  # noqa: PLC0415

                result = uvloop.run(soak(args, nodes, redis))
            except ImportError:
                result = asyncio.run(soak(args, nodes, redis))
        finally:
            for node in nodes:
                node.stop()
            redis.stop()
    result["nofile"] = [soft, hard]
    result["args"] = {k: v for k, v in vars(args).items() if k != "json"}
    print("\n" + verdict(result, min(args.warmup, args.minutes * 30)))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
