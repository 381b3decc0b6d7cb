"""Load client: drives one server through the benchmark phases and prints one JSON object.

Run it pinned to its own core (``taskset -c 1``); ``benchmarks.run`` does. Every phase reports
``client_cpu`` (this process's user+system seconds, from getrusage), ``server_cpu`` (from
/proc/PID/stat when ``--server-pid`` is given) and ``wall`` seconds: a client whose CPU time is
close to the wall time is saturated, and the figure then measures the client, not the server.

    python -m benchmarks.loadclient --port 8080 --connections 1000 --server-pid 1234
    python -m benchmarks.loadclient --port 8080 --connections 10000 --mode hold --hold 12
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import sys
import time
from collections.abc import Awaitable
from typing import Any

import orjson

from benchmarks.phases import Ctx, api_rate, fanout, finish, hold, latency, open_conns
from benchmarks.procstat import idle_rss, rss_kb


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="overtone benchmark load client")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--server-pid", type=int, default=0)
    parser.add_argument("--mode", choices=("bench", "hold"), default="bench")
    parser.add_argument("--hold", type=float, default=12.0, help="seconds to hold (hold mode)")
    args = parse_common(parser, argv)
    ctx = Ctx(
        host=args.host,
        port=args.port,
        app_id=args.app_id,
        key=args.key,
        secret=args.secret,
        server_pid=args.server_pid,
        timeout=args.timeout,
    )
    try:
        import uvloop  # noqa: PLC0415

        result = uvloop.run(run(ctx, args))
    except ImportError:
        result = asyncio.run(run(ctx, args))
    result["nofile_limit"] = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


async def run(ctx: Ctx, args: argparse.Namespace) -> dict[str, Any]:
    n, quick = args.connections, args.quick
    out: dict[str, Any] = {"connections": n, "mode": args.mode, "loop": loop_name()}
    log(f"{args.mode}: {n} connections to {ctx.host}:{ctx.port}")
    rss_before = rss_kb(ctx.server_pid)
    try:
        await phase(out, "connect", open_conns(ctx, n, "bench", args.concurrency))
        if not ctx.conns:
            return out
        gc.collect()
        gc.freeze()  # keep the collector from walking every connection object later
        if args.mode == "hold":
            await phase(out, "hold", hold(ctx, args.hold))
            return out
        await asyncio.sleep(1.0)  # let the server settle before reading its RSS
        subscribed = len(ctx.conns)
        out["rss"] = idle_rss(ctx.server_pid, rss_before, subscribed)
        log(f"rss: {out['rss']}")
        events = max(10, (200_000 if quick else 1_000_000) // subscribed)
        await phase(out, "fanout", fanout(ctx, events, window=max(4, min(64, 40_000 // n))))
        seconds = 2 if quick else 5
        await phase(out, "latency", latency(ctx, subscribers=100, rate=20, seconds=seconds))
        await phase(out, "api", api_rate(ctx, inflight=16, seconds=seconds))
    finally:
        await finish(ctx, out)
    return out


async def phase(out: dict[str, Any], name: str, work: Awaitable[dict[str, Any]]) -> None:
    """Run one phase; an exception becomes that phase's result instead of ending the run."""
    try:
        out[name] = await work
    except Exception as exc:
        out[name] = {"error": repr(exc), "partial": True}
    log(f"{name}: {out[name]}")


def parse_common(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Add the options every load client shares, parse, and raise the open-files limit."""
    parser.add_argument("--quick", action="store_true", help="shorter phases")
    parser.add_argument("--timeout", type=float, default=60.0, help="bound for each phase")
    parser.add_argument("--concurrency", type=int, default=200, help="handshakes in flight")
    parser.add_argument("--app-id", default="bench")
    parser.add_argument("--key", default="bench-key")
    parser.add_argument("--secret", default="bench-secret")
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return args


def loop_name() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def log(message: str) -> None:
    print(f"[loadclient {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
