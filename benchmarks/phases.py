"""The load client's measurement phases; each is bounded by ``Ctx.timeout`` and returns a dict.

A phase that runs out of time returns what it measured so far with ``"partial": true``. Every
event's data starts with its 8-digit sequence number, so a client can check exactly-once delivery.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from benchmarks.procstat import Meter, Pids, rss_kb
from benchmarks.wsclient import HttpConn, Signer, Stats, WSConn

PAYLOAD = "x" * 64  # data of each fan-out event; the frame is ~100 bytes


@dataclass
class Ctx:
    host: str
    port: int
    app_id: str
    key: str
    secret: str
    server_pid: Pids
    timeout: float
    ports: list[int] = field(default_factory=list)  # spread connections over these (nodes)
    stats: Stats = field(default_factory=Stats)
    conns: list[WSConn] = field(default_factory=list)

    def signer(self) -> Signer:
        return Signer(self.app_id, self.key, self.secret, self.host, self.port)

    async def http(self) -> HttpConn:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(HttpConn, self.host, self.port)
        return conn


def errors_of(ctx: Ctx) -> dict[str, Any]:
    """What went wrong on the client side: connections dropped, errors, a few samples."""
    st = ctx.stats
    return {"dropped": st.dropped, "errors": st.errors, "samples": st.samples}


async def finish(ctx: Ctx, out: dict[str, Any]) -> None:
    """Record the client-side errors in ``out`` and close every connection."""
    out["client_errors"] = errors_of(ctx)
    for conn in ctx.conns:
        conn.close()
    await asyncio.sleep(0.2)


async def until(fut: asyncio.Future[None], deadline: float) -> bool:
    """Wait for ``fut`` until the perf_counter deadline; False when time ran out."""
    try:
        await asyncio.wait_for(asyncio.shield(fut), max(0.0, deadline - time.perf_counter()))
    except TimeoutError:
        return False
    return True


async def status(fut: asyncio.Future[int] | None, deadline: float) -> int:
    """The HTTP status a request resolved to (200 when there was none, 0 on timeout)."""
    if fut is None:
        return 200
    try:
        return await asyncio.wait_for(fut, max(0.001, deadline - time.perf_counter()))
    except TimeoutError:
        return 0


async def counted_at_least(st: Stats, goal: int, deadline: float) -> bool:
    if st.counted >= goal:
        return True
    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def reached() -> None:
        st.goal = 1 << 62
        if not fut.done():
            fut.set_result(None)

    st.goal, st.on_goal = goal, reached
    ok = await until(fut, deadline)
    st.goal = 1 << 62
    return ok


ConnFactory = Callable[[Stats, str, int, str, str], WSConn]
"""Makes a client connection: ``(stats, host, port, key, channel)`` (a WebSocket by default,
an HTTP fallback session in ``benchmarks.fallback_client``)."""


async def open_conns(
    ctx: Ctx, n: int, channel: str, concurrency: int, factory: ConnFactory = WSConn
) -> dict[str, Any]:
    """Open n connections, at most ``concurrency`` opening at once, each subscribing."""
    loop, st, meter = asyncio.get_running_loop(), ctx.stats, Meter(ctx.server_pid)
    done: asyncio.Future[None] = loop.create_future()
    launched = failed = 0
    last = time.perf_counter()

    def launch() -> None:
        nonlocal launched
        port = ctx.ports[launched % len(ctx.ports)] if ctx.ports else ctx.port
        launched += 1
        coro = loop.create_connection(
            lambda: factory(st, ctx.host, port, ctx.key, channel), ctx.host, port
        )
        loop.create_task(coro).add_done_callback(connected)

    def connected(task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            fail(None, "cancelled")
        elif task.exception() is not None:
            fail(None, repr(task.exception()))

    def next_one() -> None:
        if done.done():
            return
        if len(ctx.conns) + failed >= n:
            done.set_result(None)
        elif launched < n:
            launch()

    def subscribed(conn: WSConn, name: str) -> None:
        nonlocal last
        if name == channel and not done.done():
            ctx.conns.append(conn)
            last = time.perf_counter()
            next_one()

    def fail(conn: WSConn | None, why: str) -> None:
        nonlocal failed
        failed += 1
        st.note(why)
        next_one()

    st.on_sub, st.on_fail = subscribed, fail
    for _ in range(min(concurrency, n)):
        launch()
    finished = await until(done, meter.wall + ctx.timeout)
    if not finished:
        done.cancel()  # stragglers are neither counted nor replaced
    ok = len(ctx.conns)
    return meter.result(
        subscribed=ok,
        failed=failed,
        per_second=round(ok / (last - meter.wall)) if ok else 0,
        partial=not finished,
        ops=ok,
    )


async def fanout(ctx: Ctx, events: int, window: int, triggers: int = 4) -> dict[str, Any]:
    """Trigger ``events`` on ``bench`` via the HTTP API; count deliveries to every subscriber.

    Callback-driven so the server never waits on the client's coroutines: up to ``triggers``
    requests in flight, and event i is sent only once deliveries reach (i - window) *
    subscribers, so at most ``window`` events are outstanding and server buffers stay bounded.
    """
    loop, st, signer = asyncio.get_running_loop(), ctx.stats, ctx.signer()
    subs = len(ctx.conns)
    conns = [await ctx.http() for _ in range(triggers)]
    idle = list(conns)
    done: asyncio.Future[None] = loop.create_future()
    counts = {"sent": 0, "bad": 0}
    meter = Meter(ctx.server_pid)
    deadline = meter.wall + ctx.timeout

    def pump() -> None:
        st.goal = 1 << 62
        sent, bad = counts["sent"], counts["bad"]  # a failed trigger delivers nothing
        while idle and sent < events and st.counted >= (sent - bad - window) * subs:
            if time.perf_counter() > deadline:
                return
            body = {"name": "e", "channel": "bench", "data": f"{sent:08d}{PAYLOAD[8:]}"}
            idle.pop().send(signer.request(orjson.dumps(body)))
            counts["sent"] = sent = sent + 1
        if sent < events:
            if idle:
                st.goal = (sent - bad - window) * subs
        elif st.counted >= (events - bad) * subs:
            if not done.done():
                done.set_result(None)
        else:
            st.goal = (events - bad) * subs

    def respond(conn: HttpConn, status: int) -> None:
        counts["bad"] += status != 200
        if status:
            idle.append(conn)
        pump()

    for conn in conns:
        conn.on_response = respond
    st.counted, st.on_goal = 0, pump
    first = time.perf_counter()
    pump()
    finished = await until(done, deadline)
    st.goal, st.on_goal = 1 << 62, lambda: None
    elapsed = st.last_rx - first
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()
    return meter.result(
        subscribers=subs,
        events=counts["sent"],
        deliveries=st.counted,
        expected=counts["sent"] * subs,
        per_second=round(st.counted / elapsed) if elapsed > 0 else 0,
        trigger_errors=counts["bad"],
        partial=not finished,
        ops=st.counted,
    )


async def latency(ctx: Ctx, subscribers: int, rate: int, seconds: float) -> dict[str, Any]:
    """Trigger-to-receipt latency on channel ``lat`` with ``subscribers`` subscribers."""
    loop, st, signer = asyncio.get_running_loop(), ctx.stats, ctx.signer()
    subset = ctx.conns[:subscribers]
    ready: asyncio.Future[None] = loop.create_future()
    joined = 0

    def subscribed(conn: WSConn, name: str) -> None:
        nonlocal joined
        joined += name == "lat"
        if joined >= len(subset) and not ready.done():
            ready.set_result(None)

    st.on_sub = subscribed
    for conn in subset:
        conn.subscribe("lat")
    await until(ready, time.perf_counter() + ctx.timeout)
    meter, http, bad = Meter(ctx.server_pid), await ctx.http(), 0
    st.counted, st.lat_ns, st.latency = 0, [], True
    events, deadline = 0, meter.wall + ctx.timeout
    while events < rate * seconds and time.perf_counter() < deadline:
        await asyncio.sleep(max(0.0, meter.wall + events / rate - time.perf_counter()))
        stamp = str(time.perf_counter_ns())
        body = orjson.dumps({"name": "e", "channel": "lat", "data": f"{events:08d}{stamp}"})
        bad += await status(http.call(signer.request(body)), time.perf_counter() + 5) != 200
        events += 1
    finished = await counted_at_least(st, events * joined, min(deadline, time.perf_counter() + 5))
    st.latency = False
    samples = sorted(st.lat_ns)
    if http.transport is not None:
        http.transport.close()

    def pct(p: float) -> float | None:
        return round(samples[int(p * (len(samples) - 1))] / 1e6, 3) if samples else None

    return meter.result(
        subscribers=joined,
        events=events,
        samples=len(samples),
        p50_ms=pct(0.50),
        p99_ms=pct(0.99),
        max_ms=pct(1.0),
        trigger_errors=bad,
        partial=not finished,
    )


async def api_rate(ctx: Ctx, inflight: int, seconds: float) -> dict[str, Any]:
    """Signed ``POST /apps/{id}/events`` to an empty channel, ``inflight`` keep-alive clients."""
    loop, signer = asyncio.get_running_loop(), ctx.signer()
    body = orjson.dumps({"name": "e", "channel": "empty", "data": "x"})
    conns = [await ctx.http() for _ in range(inflight)]
    done: asyncio.Future[None] = loop.create_future()
    counts = {"ok": 0, "bad": 0, "active": inflight}
    meter = Meter(ctx.server_pid)
    stop_at = meter.wall + seconds

    def respond(conn: HttpConn, status: int) -> None:
        counts["ok" if status == 200 else "bad"] += 1
        if status and time.perf_counter() < stop_at:
            conn.send(signer.request(body))
            return
        counts["active"] -= 1
        if counts["active"] == 0 and not done.done():
            done.set_result(None)

    for conn in conns:
        conn.on_response = respond
        conn.send(signer.request(body))
    finished = await until(done, stop_at + ctx.timeout)
    elapsed = time.perf_counter() - meter.wall
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()
    return meter.result(
        requests=counts["ok"],
        errors=counts["bad"],
        per_second=round(counts["ok"] / elapsed),
        partial=not finished,
        ops=counts["ok"],
    )


async def hold(ctx: Ctx, seconds: float) -> dict[str, Any]:
    """Keep every subscribed connection open, answering ``pusher:ping``; count losses."""
    st, meter = ctx.stats, Meter(ctx.server_pid)
    dropped, errors, pings = st.dropped, st.errors, st.pings
    rss_start = rss_kb(ctx.server_pid)
    end = meter.wall + seconds
    while time.perf_counter() < end:
        await asyncio.sleep(min(1.0, max(0.0, end - time.perf_counter())))
    return meter.result(
        held=sum(not conn.lost for conn in ctx.conns),
        of=len(ctx.conns),
        dropped=st.dropped - dropped,
        errors=st.errors - errors,
        pings_answered=st.pings - pings,
        rss_start_kb=rss_start,
        rss_end_kb=rss_kb(ctx.server_pid),
    )
