"""Bad HTTP input: each class gets its status and a message, and the server carries on."""

from __future__ import annotations

import asyncio
import json

import pytest

from overtone.server import Server
from support.inprocess import start
from support.servers import scaled
from support.signing import signed_target


async def exchange(port: int, data: bytes, *, wait_close: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        if wait_close:
            return await asyncio.wait_for(reader.read(-1), scaled(5))
        return await asyncio.wait_for(reader.readuntil(b"}"), scaled(5))
    finally:
        writer.close()


async def healthy(port: int) -> bool:
    answer = await exchange(port, b"GET /up HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    return answer.startswith(b"HTTP/1.1 200") and answer.endswith(b'{"health":"OK"}')


def status_and_error(answer: bytes) -> tuple[int, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)["error"]


@pytest.mark.parametrize(
    ("request_bytes", "status", "words"),
    [
        (b"GARBAGE\r\n\r\n", 400, "Malformed"),
        (b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", 400, "Malformed"),
        (
            b"POST /apps/1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4"
            b"\r\n\r\nabc",
            400,
            "Content-Length",
        ),
        (
            b"POST /apps/1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n",
            413,
            "larger",
        ),
        (b"GET /up HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 150 + b"\r\n", 431, "headers"),
        (b"GET /up HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n", 431, "too large"),
        (b"GET /app/test-key?protocol=7 HTTP/1.1\r\nHost: x\r\n\r\n", 426, "Upgrade"),
        (
            b"GET /app/test-key HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            400,
            "Connection",
        ),
        (
            b"GET /app/test-key HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n",
            400,
            "Sec-WebSocket-Key",
        ),
        (
            b"POST /app/test-key HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            405,
            "GET",
        ),
    ],
)
async def test_bad_requests(live: Server, request_bytes: bytes, status: int, words: str) -> None:
    answer = await exchange(live.port, request_bytes)
    got_status, message = status_and_error(answer)
    assert got_status == status
    assert words.lower() in message.lower()
    assert await healthy(live.port)


UPGRADE_HEADERS = (
    b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /app/test-key?protocol=7 HTTP/1.1\r\n" + UPGRADE_HEADERS + b"\r\n",
        b"GET /up HTTP/1.1\r\n\r\n",
        b"GET /apps/123456/channels HTTP/1.1\r\n\r\n",
        b"POST /apps/123456/events HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
        b"GET /nope HTTP/1.1\r\n\r\n",
    ],
    ids=["websocket-upgrade", "up", "api-get", "api-post", "unknown-path"],
)
async def test_http_11_request_without_host_gets_400(live: Server, request_bytes: bytes) -> None:
    # RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request that lacks Host.
    answer = await exchange(live.port, request_bytes)
    assert status_and_error(answer) == (
        400,
        "missing 'Host' header; HTTP/1.1 requests must carry one",
    )
    assert b"Connection: close" in answer
    assert b"101 Switching Protocols" not in answer
    assert live.node.connection_count() == 0
    assert await healthy(live.port)


async def test_request_with_host_or_http_10_without_host_is_served(live: Server) -> None:
    upgrade = b"GET /app/test-key?protocol=7 HTTP/1.1\r\nHost: \r\n" + UPGRADE_HEADERS + b"\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
    writer.write(upgrade)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), scaled(5))
    writer.close()
    assert head.startswith(b"HTTP/1.1 101")  # an empty Host is a Host (RFC 9112 §3.2)
    answer = await exchange(live.port, b"GET /up HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200")


async def test_chunked_body_over_the_limit(live: Server) -> None:
    chunk = b"%x\r\n%s\r\n" % (600_000, b"a" * 600_000)
    answer = await exchange(
        live.port,
        b"POST /apps/123456/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunk * 2,
    )
    assert status_and_error(answer)[0] == 413


async def test_pipelined_requests_are_answered_in_order(live: Server) -> None:
    one = b"GET /up HTTP/1.1\r\nHost: x\r\n\r\n"
    nope = b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET /up HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = await exchange(live.port, one + nope + last)
    statuses = [int(part.split(b" ")[1]) for part in answer.split(b"HTTP/1.1")[1:]]
    assert statuses == [200, 404, 200]


async def test_http_10_is_answered_and_closed(live: Server) -> None:
    answer = await exchange(live.port, b"GET /up HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200") and b"Connection: close" in answer


async def test_keep_alive_serves_many_requests_on_one_connection(live: Server) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
    for _ in range(3):
        writer.write(b"GET /up HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), scaled(5))
        assert head.startswith(b"HTTP/1.1 200")
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
    writer.close()


async def test_slowloris_gets_408(live: Server) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
    writer.write(b"GET /up HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    answer = await asyncio.wait_for(reader.read(-1), scaled(5))
    writer.close()
    assert status_and_error(answer) == (408, "Request not completed in time")


async def test_idle_connection_is_closed_and_truncated_request_is_harmless(live: Server) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
    assert await asyncio.wait_for(reader.read(-1), scaled(5)) == b""  # idle: closed silently
    writer.close()
    _, writer = await asyncio.open_connection("127.0.0.1", live.port)
    writer.write(b"POST /apps/123456/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    await writer.drain()
    writer.close()
    assert await healthy(live.port)


async def test_large_body_on_a_kept_alive_connection_gets_one_answer(live: Server) -> None:
    body = json.dumps(
        {"batch": [{"name": "e", "channel": "c", "data": "x" * 9_000} for _ in range(2)]}
    ).encode()
    target = signed_target("POST", "/apps/123456/batch_events", body)
    request = (
        f"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
    writer.write(request)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), scaled(5))
    assert head.startswith(b"HTTP/1.1 200")
    assert await reader.readexactly(2) == b"{}"
    with pytest.raises(TimeoutError):  # nothing more: no stray 431
        await asyncio.wait_for(reader.read(1), 0.3)
    writer.close()


async def test_shutdown_closes_idle_keep_alive_connections_at_once() -> None:
    server = await start(OVERTONE_SHUTDOWN_TIMEOUT="60")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /up HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.wait_for(reader.readuntil(b'{"health":"OK"}'), scaled(5))
    # An idle kept-alive connection must not hold the drain for its 60 s bound.
    await asyncio.wait_for(server.shutdown(), 30)
    assert await asyncio.wait_for(reader.read(-1), scaled(5)) == b""
    writer.close()
