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
import hmac
import resource
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from benchmarks.loadclient import log, loop_name, parse_common, phase
from benchmarks.phases import Ctx, fanout, latency, open_conns, until
from benchmarks.procstat import Meter, rss_kb
from benchmarks.wsclient import HttpConn, Signer, Stats, WSConn

ITEMS_PER_BATCH = 10  # the default max_batch_size
CHANNELS_PER_ITEM = 100  # the default max_channels_per_trigger
DATA_BYTES = 104  # a stored event (JSON-escaped, with "offset":NNN) is then ~200 bytes


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


def errors_of(ctx: Ctx) -> dict[str, Any]:
    st = ctx.stats
    return {"dropped": st.dropped, "errors": st.errors, "samples": st.samples}


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


# -- HTTP helpers: batch publishing, signed GET with a body ----------------------------------


class BodyConn(HttpConn):
    """:class:`HttpConn` that also keeps the body of the last response."""

    def __init__(self) -> None:
        super().__init__()
        self.body = bytearray()

    def on_message_begin(self) -> None:
        self.body.clear()

    def on_body(self, chunk: bytes) -> None:
        self.body.extend(chunk)


async def body_conn(ctx: Ctx) -> BodyConn:
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(BodyConn, ctx.host, ctx.port)
    return conn


def batch_signer(ctx: Ctx) -> Signer:
    signer = ctx.signer()
    signer.path = f"/apps/{ctx.app_id}/batch_events"
    return signer


def signed_get(ctx: Ctx, path: str, params: dict[str, str]) -> bytes:
    """A signed ``GET`` (Pusher HTTP API auth_version 1.0) for ``path`` with ``params``."""
    query = {
        **params,
        "auth_key": ctx.key,
        "auth_timestamp": str(int(time.time())),
        "auth_version": "1.0",
    }
    canonical = "&".join(f"{k}={v}" for k, v in sorted(query.items()))
    signature = hmac.digest(ctx.secret.encode(), f"GET\n{path}\n{canonical}".encode(), "sha256")
    return (
        f"GET {path}?{canonical}&auth_signature={signature.hex()} HTTP/1.1\r\n"
        f"Host: {ctx.host}:{ctx.port}\r\n\r\n"
    ).encode()


async def get_json(ctx: Ctx, conn: BodyConn, path: str, params: dict[str, str]) -> Any:
    """The decoded JSON answer of a signed GET (``None`` unless the status is 200)."""
    status = await asyncio.wait_for(conn.call(signed_get(ctx, path, params)), 10.0)
    return orjson.loads(bytes(conn.body)) if status == 200 else None


async def send_all(
    conns: list[HttpConn], requests: Iterator[bytes], deadline: float
) -> dict[str, int]:
    """Send every request of ``requests``, one in flight per connection; count the answers."""
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    counts = {"ok": 0, "bad": 0, "active": len(conns)}

    def next_request(conn: HttpConn) -> None:
        request = next(requests, None) if time.perf_counter() < deadline else None
        if request is not None:
            conn.send(request)
            return
        counts["active"] -= 1
        if counts["active"] == 0 and not done.done():
            done.set_result(None)

    def respond(conn: HttpConn, status: int) -> None:
        counts["ok" if status == 200 else "bad"] += 1
        next_request(conn)

    for conn in conns:
        conn.on_response = respond
    for conn in conns:
        next_request(conn)
    await until(done, deadline + 5.0)
    return counts


def event_data(seq: int) -> str:
    """An event's data: its 8-digit sequence number, then a small JSON-looking record."""
    record = f'{seq:08d}{{"id":{seq},"status":"in_progress","room":"B-204","note":"'
    return record.ljust(DATA_BYTES - 2, "x") + '"}'


def batches(channels: list[str], events: int, seq_of: Callable[[int], int]) -> Iterator[bytes]:
    """Bodies of ``batch_events`` requests: round r puts one event on every channel, in
    requests of 10 items x 100 channels."""
    per_request = ITEMS_PER_BATCH * CHANNELS_PER_ITEM
    for r in range(events):
        data = event_data(seq_of(r))
        for start in range(0, len(channels), per_request):
            block = channels[start : start + per_request]
            items = [
                {"name": "appointment.updated", "channels": block[i : i + CHANNELS_PER_ITEM]}
                for i in range(0, len(block), CHANNELS_PER_ITEM)
            ]
            yield orjson.dumps({"batch": [{**item, "data": data} for item in items]})


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


# -- recovery -------------------------------------------------------------------------------


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


if __name__ == "__main__":
    main()
