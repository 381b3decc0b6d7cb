"""HTTP helpers of the history benchmark: batch publishing and signed ``GET`` requests whose
answers it reads."""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from benchmarks.phases import Ctx, until
from benchmarks.wsclient import HttpConn, Signer

ITEMS_PER_BATCH = 10  # the default max_batch_size
CHANNELS_PER_ITEM = 100  # the default max_channels_per_trigger
DATA_BYTES = 104  # a stored event (JSON-escaped, with "offset":NNN) is then ~200 bytes


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
