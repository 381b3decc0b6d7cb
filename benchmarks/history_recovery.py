"""The history benchmark's recovery mode: clients disconnect, events are missed, and every
client reconnects at once with ``recover``; each must get exactly what it missed, in order."""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any

import orjson

from benchmarks.history_client_http import (
    ITEMS_PER_BATCH,
    batch_signer,
    body_conn,
    event_data,
    get_json,
)
from benchmarks.loadclient import log, loop_name
from benchmarks.phases import Ctx, errors_of, until
from benchmarks.procstat import Meter
from benchmarks.wsclient import Stats, WSConn


class Tally:
    """What every recovering client shares: when the last replayed event arrived, and a
    future that completes when every client has seen the final offset."""

    def __init__(self) -> None:
        self.replay_upto = 0  # offsets up to here were published while clients were away
        self.final = 0  # the last offset of the round (after the live events)
        self.last_replay = 0.0
        self.last_subscribed = 0.0
        self.finished = 0
        self.goal = 1 << 62
        self.done: asyncio.Future[None] | None = None
        self.subscribed = 0

    def reached_final(self) -> None:
        self.finished += 1
        if self.finished >= self.goal and self.done is not None and not self.done.done():
            self.done.set_result(None)


class RecoverConn(WSConn):
    """A subscriber that records its stream position and the offset of every event, and
    subscribes with ``recover`` when it has a position to recover from."""

    __slots__ = ("epoch", "mismatched", "offsets", "recover_from", "recovered", "tally")

    def __init__(
        self,
        stats: Stats,
        tally: Tally,
        host: str,
        port: int,
        key: str,
        channel: str,
        recover_from: tuple[str, int] | None,
    ) -> None:
        super().__init__(stats, host, port, key, channel)
        self.tally = tally
        self.recover_from = recover_from
        self.epoch = ""
        self.offsets: list[int] = [recover_from[1]] if recover_from else []
        self.recovered: bool | None = None
        self.mismatched = 0
        self.seen = bytearray()  # makes WSConn call track() for every event frame

    def subscribe(self, channel: str) -> None:
        data: dict[str, Any] = {"channel": channel}
        if self.recover_from is not None:
            data["recover"] = {"epoch": self.recover_from[0], "offset": self.recover_from[1]}
        self.send(orjson.dumps({"event": "pusher:subscribe", "data": data}))

    def control(self, payload: bytes) -> None:
        if b"subscription_succeeded" in payload:
            with_position = orjson.loads(payload)
            position = with_position.get("position") or {}
            self.epoch = str(position.get("epoch", ""))
            if not self.offsets:
                self.offsets.append(int(position.get("offset", 0)))
            self.recovered = with_position.get("recovered")
            self.tally.last_subscribed = time.perf_counter()
            self.tally.subscribed += 1
        super().control(payload)

    def track(self, data: bytes, start: int, stop: int) -> None:
        at = data.rfind(b',"offset":', start, stop)
        seq_at = data.find(b'"data":"', start, stop) + 8
        try:
            offset = int(data[at + 10 : stop - 1]) if at >= 0 else -1
            seq = int(data[seq_at : seq_at + 8])
        except ValueError:
            offset = seq = -1
        if offset != seq:  # each event's data carries the offset it must get
            self.mismatched += 1
        self.offsets.append(offset)
        tally = self.tally
        if offset == tally.replay_upto:  # this client's last missed event
            tally.last_replay = time.perf_counter()
        if offset == tally.final:
            tally.reached_final()

    @property
    def last(self) -> int:
        return self.offsets[-1] if self.offsets else 0


async def connect_all(
    ctx: Ctx, make: Callable[[int], RecoverConn], n: int, concurrency: int, tally: Tally
) -> tuple[list[RecoverConn], int]:
    """Open ``n`` connections (``concurrency`` handshaking at once); wait for every
    ``subscription_succeeded`` (or a failure). Returns the connections and the failures."""
    loop, st = asyncio.get_running_loop(), ctx.stats
    done: asyncio.Future[None] = loop.create_future()
    conns: list[RecoverConn] = []
    counts = {"launched": 0, "ready": 0, "failed": 0}

    def launch() -> None:
        i = counts["launched"]
        counts["launched"] += 1
        conn = make(i)
        conns.append(conn)
        task = loop.create_task(loop.create_connection(lambda: conn, ctx.host, ctx.port))
        task.add_done_callback(connected)

    def connected(task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            fail(None, "cancelled")
        elif task.exception() is not None:
            fail(None, repr(task.exception()))

    def settle() -> None:
        if counts["ready"] + counts["failed"] >= n:
            if not done.done():
                done.set_result(None)
        elif counts["launched"] < n:
            launch()

    def subscribed(conn: WSConn, name: str) -> None:
        counts["ready"] += 1
        settle()

    def fail(conn: WSConn | None, why: str) -> None:
        counts["failed"] += 1
        st.note(why)
        settle()

    st.on_sub, st.on_fail = subscribed, fail
    for _ in range(min(n, concurrency)):
        launch()
    await until(done, time.perf_counter() + ctx.timeout)
    return conns, counts["failed"] + n - counts["ready"] - counts["failed"]


async def unoccupied(ctx: Ctx, channels: list[str], seconds: float) -> bool:
    """Poll the channel info until the server has noticed every disconnect."""
    conn = await body_conn(ctx)
    end = time.perf_counter() + seconds
    try:
        while time.perf_counter() < end:
            answers = [
                await get_json(ctx, conn, f"/apps/{ctx.app_id}/channels/{name}", {})
                for name in channels
            ]
            if all(isinstance(a, dict) and a.get("occupied") is False for a in answers):
                return True
            await asyncio.sleep(0.02)
        return False
    finally:
        if conn.transport is not None:
            conn.transport.close()


async def publish(ctx: Ctx, channels: list[str], first_seq: int, count: int) -> int:
    """Publish ``count`` events to every channel (10 per request); the number refused."""
    signer = batch_signer(ctx)
    conn = await ctx.http()
    bad = 0
    for start in range(0, count, ITEMS_PER_BATCH):
        items = [
            {"name": "e", "channels": channels, "data": event_data(first_seq + i)}
            for i in range(start, min(count, start + ITEMS_PER_BATCH))
        ]
        request = signer.request(orjson.dumps({"batch": items}))
        status = await asyncio.wait_for(conn.call(request), 10.0)
        bad += status != 200
    if conn.transport is not None:
        conn.transport.close()
    return bad


async def run_recovery(ctxs: list[Ctx], args: argparse.Namespace) -> dict[str, Any]:
    """Subscribe, disconnect, publish the missed events, reconnect everybody with recover."""
    ctx = ctxs[0]
    n, st = args.connections, ctx.stats
    channels = [f"recover-{i}" for i in range(max(1, min(args.recover_channels, 100)))]
    tally = Tally()
    out: dict[str, Any] = {"mode": "recovery", "connections": n, "channels": len(channels)}
    out["loop"] = loop_name()
    rounds: list[dict[str, Any]] = []
    out["rounds"] = rounds

    def fresh(i: int) -> RecoverConn:
        return RecoverConn(
            st, tally, ctx.host, ctx.port, ctx.key, channels[i % len(channels)], None
        )

    meter = Meter(ctx.server_pid)
    conns, failed = await connect_all(ctx, fresh, n, args.concurrency, tally)
    out["connect"] = meter.result(subscribed=tally.subscribed, failed=failed)
    log(f"recovery: connected {out['connect']}")
    gc.collect()
    gc.freeze()
    offset = 0  # every channel gets the same events, so the same offsets
    warm = 5
    try:
        for round_no in range(args.rounds):
            # live events first: each client's last position is then a real offset
            tally.replay_upto, tally.final = 0, offset + warm
            tally.finished, tally.goal = 0, n
            tally.done = asyncio.get_running_loop().create_future()
            bad = await publish(ctx, channels, offset + 1, warm)
            offset += warm
            await until(tally.done, time.perf_counter() + ctx.timeout)
            for conn in conns:
                conn.close()
            quiet = await unoccupied(ctx, channels, 10.0)
            bad += await publish(ctx, channels, offset + 1, args.missed)
            offset += args.missed
            tally.replay_upto, tally.final = offset, offset + args.live
            tally.finished, tally.last_replay, tally.subscribed = 0, 0.0, 0
            tally.done = asyncio.get_running_loop().create_future()
            old = conns

            def again(i: int, old: list[RecoverConn] = old) -> RecoverConn:
                prev = old[i]
                return RecoverConn(
                    st, tally, ctx.host, ctx.port, ctx.key, prev.channel, (prev.epoch, prev.last)
                )

            expected = [(c.last, c.epoch) for c in old]
            meter = Meter(ctx.server_pid)
            first = time.perf_counter()
            storm = asyncio.ensure_future(connect_all(ctx, again, n, n, tally))
            live = asyncio.ensure_future(trickle(ctx, channels, offset + 1, args.live))
            conns, failed = await storm
            bad += await live
            offset += args.live
            finished = await until(tally.done, first + ctx.timeout)
            result = meter.result(partial=not finished)
            checked = check(conns, expected, tally.replay_upto, offset)
            replayed = checked.pop("replayed")
            span = tally.last_replay - first
            result.update(
                round=round_no + 1,
                replayed=replayed,
                to_last_subscribed_s=round(tally.last_subscribed - first, 4),
                to_last_replay_s=round(span, 4),
                replayed_per_second=round(replayed / span) if span > 0 else None,
                connect_failed=failed,
                trigger_errors=bad,
                server_unoccupied_before_publish=quiet,
                **checked,
            )
            rounds.append(result)
            log(f"recovery round {round_no + 1}: {result}")
            await asyncio.sleep(0.3)
    finally:
        out["client_errors"] = errors_of(ctx)
        for conn in conns:
            conn.close()
        await asyncio.sleep(0.2)
    return out


async def trickle(ctx: Ctx, channels: list[str], first_seq: int, count: int) -> int:
    """Publish ``count`` live events during the reconnect storm, one every 10 ms."""
    signer, conn, bad = ctx.signer(), await ctx.http(), 0
    for i in range(count):
        await asyncio.sleep(0.01)
        body = {"name": "e", "channels": channels, "data": event_data(first_seq + i)}
        status = await asyncio.wait_for(conn.call(signer.request(orjson.dumps(body))), 10.0)
        bad += status != 200
    if conn.transport is not None:
        conn.transport.close()
    return bad


def check(
    conns: list[RecoverConn], expected: list[tuple[int, str]], replay_upto: int, final: int
) -> dict[str, int]:
    """Every client: recovered true, then exactly the offsets after its own, in order."""
    failures = not_recovered = wrong_order = mismatched = replayed = 0
    for conn, (last, _epoch) in zip(conns, expected, strict=True):
        got = conn.offsets[1:]  # [0] is the position it recovered from
        ok = conn.recovered is True and got == list(range(last + 1, final + 1))
        not_recovered += conn.recovered is not True
        wrong_order += conn.recovered is True and not ok
        mismatched += conn.mismatched
        failures += not ok or conn.mismatched > 0
        replayed += sum(1 for offset in got if offset <= replay_upto)
    return {
        "failures": failures,
        "not_recovered": not_recovered,
        "wrong_events": wrong_order,
        "data_offset_mismatches": mismatched,
        "replayed": replayed,
    }
