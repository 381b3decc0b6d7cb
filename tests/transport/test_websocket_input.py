"""Bad WebSocket input, keepalive, slow readers and shutdown through a real socket."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from overtone.server import Server
from support.fakes import auth_for
from support.inprocess import start
from support.rawws import RawClient, frame
from support.servers import scaled


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/app/test-key", 4008),
        ("/app/test-key?protocol=abc", 4006),
        ("/app/test-key?protocol=8", 4007),
        ("/app/test-key?protocol=4", 4007),
        ("/app/unknown?protocol=7", 4001),
    ],
)
async def test_connection_refusals_send_error_then_close_with_same_code(
    live: Server, path: str, code: int
) -> None:
    client = await RawClient.connect(live.port, path)
    message = await client.recv_json()
    assert message["event"] == "pusher:error" and message["data"]["code"] == code
    assert await client.recv_close() == code
    client.close()


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (frame(b'{"event":"pusher:ping"}', mask=False), 1002),
        (frame(b'{"event":"pusher:ping"}', rsv=4), 1002),
        (frame(b"x" * 126, opcode=0x9), 1002),
        (frame(b"\xff\xfe{}"), 1007),
        (frame(b"x" * 10_001), 1009),
        (frame(b'{"event":"pusher:ping"}', opcode=0x2), 1003),
        (frame(b"x", opcode=0x5), 1002),
    ],
)
async def test_frame_violations_close_with_the_rfc_code(
    live: Server, data: bytes, code: int
) -> None:
    bystander = await RawClient.connect(live.port)
    await bystander.established()
    client = await RawClient.connect(live.port)
    await client.established()
    client.send(data)
    assert await client.recv_close() == code
    client.close()
    bystander.send_json({"event": "pusher:ping", "data": {}})
    assert (await bystander.recv_json())["event"] == "pusher:pong"
    bystander.close()


async def test_deeply_nested_json_is_an_invalid_message_not_a_crash(live: Server) -> None:
    client = await RawClient.connect(live.port)
    await client.established()
    client.send(frame(b"[" * 9_000 + b"]" * 900))
    client.send(frame(b'{"event":"x","data":' + b"[" * 4_900 + b"]" * 4_900 + b"}"))
    for _ in range(2):
        error = await client.recv_json()
        assert error["data"]["code"] == 4200
    client.send_json({"event": "pusher:ping", "data": {}})
    assert (await client.recv_json())["event"] == "pusher:pong"
    client.close()


async def test_fragmented_messages_and_control_frames(live: Server) -> None:
    client = await RawClient.connect(live.port)
    await client.established()
    message = b'{"event":"pusher:ping","data":{}}'
    client.send(frame(message[:10], fin=False))
    client.send(frame(b"hello", opcode=0x9))
    client.send(frame(message[10:], opcode=0x0))
    assert await client.recv() == (0xA, b"hello")
    assert (await client.recv_json())["event"] == "pusher:pong"
    client.send(frame(b"\x03\xe8", opcode=0x8))
    assert await client.recv_close() == 1000
    client.close()


async def test_keepalive_pings_then_closes_silent_clients_with_4201() -> None:
    server = await start(
        REVERB_APP_ACTIVITY_TIMEOUT="1", OVERTONE_PONG_TIMEOUT="0.5", OVERTONE_TICK_INTERVAL="0.1"
    )
    try:
        silent = await RawClient.connect(server.port)
        await silent.established()
        alive = await RawClient.connect(server.port)
        await alive.established()
        assert (await silent.recv_json())["event"] == "pusher:ping"
        assert (await alive.recv_json())["event"] == "pusher:ping"
        alive.send_json({"event": "pusher:pong", "data": {}})
        error = await silent.recv_json()
        assert error["data"]["code"] == 4201
        assert await silent.recv_close() == 4201
        assert server.node.connection_count() == 1
        silent.close()
        alive.close()
    finally:
        await server.shutdown()


async def test_ping_interval_below_the_activity_timeout_prunes_a_silent_client_sooner() -> None:
    server = await start(
        REVERB_APP_ACTIVITY_TIMEOUT="30",
        REVERB_APP_PING_INTERVAL="1",
        OVERTONE_PONG_TIMEOUT="0.5",
        OVERTONE_TICK_INTERVAL="0.1",
    )
    try:
        silent = await RawClient.connect(server.port)
        established = await silent.recv_json()
        assert json.loads(established["data"])["activity_timeout"] == 30
        assert (await silent.recv_json(timeout=3))["event"] == "pusher:ping"
        assert (await silent.recv_json(timeout=3))["data"]["code"] == 4201
        assert await silent.recv_close() == 4201
        assert server.node.connection_count() == 0
        silent.close()
    finally:
        await server.shutdown()


async def test_a_client_that_never_reads_is_dropped_and_others_keep_receiving(
    live: Server,
) -> None:
    slow_sock = socket.create_connection(("127.0.0.1", live.port))
    slow_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader, writer = await asyncio.open_connection(sock=slow_sock)
    slow = RawClient(reader, writer)
    writer.write(
        b"GET /app/test-key?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    await reader.readuntil(b"\r\n\r\n")
    await slow.established()
    slow.send_json({"event": "pusher:subscribe", "data": {"channel": "firehose"}})
    await slow.recv_json()
    fast = await RawClient.connect(live.port)
    await fast.established()
    fast.send_json({"event": "pusher:subscribe", "data": {"channel": "firehose"}})
    await fast.recv_json()
    hub = next(live.node.hubs())
    data = "x" * 9_000
    received = 0
    for _ in range(1_000):  # ~9 MB: far past the 64 KiB bound plus kernel buffers
        hub.publish("big", ["firehose"], data, None, 0)
        while True:  # drain what the fast client has so far
            try:
                await asyncio.wait_for(fast.recv(), 0.001 if received else 5)
            except TimeoutError:
                break
            received += 1
        if len(hub.sessions) == 1:
            break
    assert len(hub.sessions) == 1, "the slow reader should have been dropped"
    writer.close()
    fast.close()


async def test_graceful_shutdown_sends_4200_to_everyone(live: Server) -> None:
    clients = [await RawClient.connect(live.port) for _ in range(3)]
    for client in clients:
        await client.established()
    shutdown = asyncio.create_task(live.shutdown())
    for client in clients:
        message = await client.recv_json()
        assert message["event"] == "pusher:error" and message["data"]["code"] == 4200
        assert await client.recv_close() == 4200
        client.send(frame(b"\x10\x68", opcode=0x8))
    await asyncio.wait_for(shutdown, scaled(5))
    for client in clients:
        client.close()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", live.port)


async def test_client_event_flood_gets_4301_and_the_connection_stays(live: Server) -> None:
    hub = live.node.hub(live.node.registry.by_key("test-key"))  # type: ignore[arg-type]
    client = await RawClient.connect(live.port)
    socket_id = await client.established()
    auth = auth_for(hub, socket_id, "private-flood")
    client.send_json(
        {"event": "pusher:subscribe", "data": {"channel": "private-flood", "auth": auth}}
    )
    await client.recv_json()
    for _ in range(15):
        client.send_json({"event": "client-x", "channel": "private-flood", "data": {}})
    error = await client.recv_json()
    assert error["data"]["code"] == 4301
    client.send_json({"event": "pusher:ping", "data": {}})
    while (message := await client.recv_json())["event"] != "pusher:pong":
        assert message["data"]["code"] == 4301
    client.close()


async def test_over_capacity_gets_4100() -> None:
    server = await start(OVERTONE_MAX_CONNECTIONS="2")
    try:
        clients = [await RawClient.connect(server.port) for _ in range(2)]
        for client in clients:
            await client.established()
        third = await RawClient.connect(server.port)
        error = await third.recv_json()
        assert error["data"]["code"] == 4100
        assert await third.recv_close() == 4100
        third.close()
        clients.pop().close()
        await asyncio.sleep(0.1)
        again = await RawClient.connect(server.port)
        await again.established()  # room again once a connection left
        again.close()
        clients[0].close()
    finally:
        await server.shutdown()
