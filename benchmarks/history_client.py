"""History load client: the figures of ``benchmarks.history``, one mode per invocation.

- ``fanout``: ``--ports ON,OFF`` are two servers (history on and off); ``--connections`` N
  subscribe to ``bench`` on each; fan-out phases (:func:`benchmarks.phases.fanout`) then
  latency phases (:func:`benchmarks.phases.latency`) alternate between the two in ABBA order.
- ``memory``: publishes ``--events`` rounds of one event to each of ``--channels`` channels
  through the signed ``POST /apps/{id}/batch_events`` (10 events per item, 100 channels per
  event: 1 000 stored events per request), reads the server's RSS before and after, and samples
  how many events some channels hold through the signed history route.
- ``recovery``: ``--connections`` clients subscribe; they all disconnect, ``--missed`` events
  are published, then all reconnect at once with ``recover`` = the last position each saw,
  while ``--live`` more events are published; every client must get exactly the events after
  its position, in order, with ``recovered: true``.

Prints one JSON object (the last stdout line).

    python -m benchmarks.history_client --mode fanout --ports 8081,8082 --server-pids 11,12
    python -m benchmarks.history_client --mode memory --ports 8081 --channels 10000 --events 100
    python -m benchmarks.history_client --mode recovery --ports 8081 --connections 1000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

from benchmarks.history_client_http import (
    batch_signer,
    batches,
    body_conn,
    event_data,
    get_json,
    send_all,
)
from benchmarks.history_recovery import run_recovery
from benchmarks.loadclient import log, loop_name, parse_common, phase
from benchmarks.phases import Ctx, errors_of, fanout, latency, open_conns
from benchmarks.procstat import Meter, rss_kb
from benchmarks.wsclient import HttpConn


def numbers(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="overtone history benchmark load client")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--mode", choices=("fanout", "memory", "recovery"), required=True)
    parser.add_argument("--ports", type=numbers, required=True, help="fanout: ON,OFF")
    parser.add_argument("--server-pids", type=numbers, default=[])
    parser.add_argument("--labels", default="on,off", help="fanout: names of the two servers")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--deliveries", type=int, default=500_000, help="per fan-out phase")
    parser.add_argument("--reps", type=int, default=3, help="fan-out phases per server")
    parser.add_argument("--latency-reps", type=int, default=0, help="latency phases per server")
    parser.add_argument("--latency-seconds", type=float, default=5.0)
    parser.add_argument("--channels", type=int, default=10_000, help="memory: channels")
    parser.add_argument("--events", type=int, default=100, help="memory: events per channel")
    parser.add_argument("--inflight", type=int, default=8, help="memory: requests in flight")
    parser.add_argument("--samples", type=int, default=20, help="memory: channels sampled")
    parser.add_argument("--recover-channels", type=int, default=1, help="recovery: channels")
    parser.add_argument("--missed", type=int, default=50, help="recovery: events missed")
    parser.add_argument("--live", type=int, default=10, help="recovery: events during it")
    parser.add_argument("--rounds", type=int, default=3, help="recovery: reconnect storms")
    args = parse_common(parser, argv)
    pids = args.server_pids or [0] * len(args.ports)
    ctxs = [
        Ctx(args.host, port, args.app_id, args.key, args.secret, pid, args.timeout)
        for port, pid in zip(args.ports, pids, strict=True)
    ]
    modes: dict[str, Callable[[list[Ctx], argparse.Namespace], Any]] = {
        "fanout": run_fanout,
        "memory": run_memory,
        "recovery": run_recovery,
    }
    try:
        import uvloop  # noqa: PLC0415

        result = uvloop.run(modes[args.mode](ctxs, args))
    except ImportError:
        result = asyncio.run(modes[args.mode](ctxs, args))
    result["nofile_limit"] = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


# -- fan-out and latency, history on vs off ---------------------------------------------------


async def run_fanout(ctxs: list[Ctx], args: argparse.Namespace) -> dict[str, Any]:
    """N subscribers on each server, then fan-out and latency phases alternating ABBA."""
    labels = args.labels.split(",")
    n = args.connections
    out: dict[str, Any] = {"mode": "fanout", "connections": n, "loop": loop_name()}
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in labels}
    out["runs"] = runs
    try:
        for label, ctx in zip(labels, ctxs, strict=True):
            log(f"fanout: {n} connections to {label} ({ctx.host}:{ctx.port})")
            connected: dict[str, Any] = {}
            await phase(connected, "connect", open_conns(ctx, n, "bench", args.concurrency))
            out[f"connect_{label}"] = connected["connect"]
        if not all(ctx.conns for ctx in ctxs):
            return out
        gc.collect()
        gc.freeze()
        await asyncio.sleep(1.0)
        events = max(10, args.deliveries // n)
        window = max(4, min(64, 40_000 // n))
        for rep in range(max(args.reps, args.latency_reps)):
            order = list(zip(labels, ctxs, strict=True))
            for label, ctx in order if rep % 2 == 0 else order[::-1]:
                result: dict[str, Any] = {}
                if rep < args.reps:
                    await phase(result, "fanout", fanout(ctx, events, window))
                    await asyncio.sleep(0.3)
                runs[label].append(result)
        for rep in range(args.latency_reps):
            order = list(zip(labels, ctxs, strict=True))
            for label, ctx in order if rep % 2 == 0 else order[::-1]:
                work = latency(ctx, subscribers=100, rate=20, seconds=args.latency_seconds)
                await phase(runs[label][rep], "latency", work)
                await asyncio.sleep(0.3)
    finally:
        for label, ctx in zip(labels, ctxs, strict=True):
            out[f"client_errors_{label}"] = errors_of(ctx)
            for each in runs.get(label, []):
                each["client_errors"] = errors_of(ctx)
            for conn in ctx.conns:
                conn.close()
        await asyncio.sleep(0.2)
    return out


# -- memory ---------------------------------------------------------------------------------


async def run_memory(ctxs: list[Ctx], args: argparse.Namespace) -> dict[str, Any]:
    """Publish ``events`` rounds to ``channels`` channels; RSS before and after."""
    ctx = ctxs[0]
    signer = batch_signer(ctx)
    names = [f"clinic.room.{i:05d}" for i in range(args.channels)]
    conns: list[HttpConn] = [await ctx.http() for _ in range(args.inflight)]
    deadline = time.perf_counter() + ctx.timeout
    warm = (signer.request(body) for body in batches(["warm-up"], 20, lambda r: r + 1))
    await send_all(conns, warm, deadline)  # first-request allocations, outside the figure
    await asyncio.sleep(1.0)
    before = rss_kb(ctx.server_pid)
    meter = Meter(ctx.server_pid)
    requests = (signer.request(body) for body in batches(names, args.events, lambda r: r + 1))
    counts = await send_all(conns, requests, deadline)
    published = meter.result(
        events=args.channels * args.events if counts["bad"] == 0 else None,
        requests=counts["ok"],
        errors=counts["bad"],
        partial=time.perf_counter() > deadline,
    )
    if published["events"]:
        published["server_us_per_event"] = round(
            published["server_cpu"] / published["events"] * 1e6, 2
        )
    log(f"memory: published {published}")
    await asyncio.sleep(1.5)
    after = rss_kb(ctx.server_pid)
    reader = await body_conn(ctx)
    picked = sorted(
        {i * len(names) // args.samples for i in range(args.samples)} | {len(names) - 1}
    )
    held: list[int] = []
    complete = offset_ok = 0
    epoch_seen = None
    for i in picked:
        path = f"/apps/{ctx.app_id}/channels/{names[i]}/history"
        page = await get_json(ctx, reader, path, {"since": "0", "limit": "1000"})
        if not isinstance(page, dict):
            continue
        events = page.get("events") or []
        held.append(len(events))
        complete += bool(page.get("complete"))
        position = page.get("position") or {}
        epoch_seen = position.get("epoch")
        # the newest held event is the channel's last one: eviction is oldest first
        offset_ok += position.get("offset") == args.events and (
            not events or events[-1].get("offset") == args.events
        )
    for conn in [*conns, reader]:
        if conn.transport is not None:
            conn.transport.close()
    sample = {"event": "appointment.updated", "channel": names[-1], "data": event_data(1)}
    stored = len(orjson.dumps(sample)) + len(f',"offset":{args.events}')
    mean = sum(held) / len(held) if held else 0.0
    return {
        "mode": "memory",
        "channels": args.channels,
        "events_per_channel": args.events,
        "publish": published,
        "rss_before_kb": before,
        "rss_after_kb": after,
        "growth_kb": after - before,
        "stored_event_bytes": stored,
        "sampled_channels": len(held),
        "held_min": min(held) if held else None,
        "held_mean": round(mean, 2),
        "held_max": max(held) if held else None,
        "held_estimate": round(mean * args.channels),
        "history_answers": len(held),
        "complete_pages": complete,
        "positions_at_last_event": offset_ok,
        "history_on": epoch_seen is not None,
        "loop": loop_name(),
    }


if __name__ == "__main__":
    main()
