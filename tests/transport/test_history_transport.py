"""History through the transport of a clustered node (in-process bus as the shared store):
answers that wait for a stream keep pipelined HTTP responses in order, and a subscription
that waits for its stream is answered once it has been read."""

from __future__ import annotations

import asyncio
import json

from overtone.cluster.memory_broker import MemoryBus
from overtone.config import load_settings
from overtone.server import Server
from support.inprocess import BASE_ENV
from support.rawws import RawClient
from support.servers import scaled
from support.signing import signed_target

KEY, SECRET = "test-key", "test-secret"


async def clustered(bus: MemoryBus) -> Server:
    server = Server(load_settings(BASE_ENV), broker_factory=bus.broker)
    await server.start()
    return server


async def test_pipelined_answers_stay_in_order_while_one_waits_for_its_stream() -> None:
    bus = MemoryBus()
    a, b = await clustered(bus), await clustered(bus)
    try:
        history = next(b.node.hubs()).history
        assert history is not None and "news" not in history.streams  # b must read it first
        position = signed_target(
            "GET", "/apps/123456/channels/news", params={"info": "position"}, key=KEY, secret=SECRET
        )
        users = signed_target("GET", "/apps/123456/connections", key=KEY, secret=SECRET)
        reader, writer = await asyncio.open_connection("127.0.0.1", b.port)
        writer.write(
            f"GET {position} HTTP/1.1\r\nHost: x\r\n\r\n"
            f"GET {users} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        )
        raw = await asyncio.wait_for(reader.read(-1), scaled(5))
        writer.close()
        first, second = [part for part in raw.split(b"HTTP/1.1 ")[1:]]
        assert first.startswith(b"200") and second.startswith(b"200")
        assert json.loads(first.partition(b"\r\n\r\n")[2])["position"]["offset"] == 0
        assert json.loads(second.partition(b"\r\n\r\n")[2]) == {"connections": 0}
        assert "news" in history.streams
    finally:
        await a.shutdown()
        await b.shutdown()


async def test_a_subscription_waits_for_a_stream_this_node_does_not_follow() -> None:
    bus = MemoryBus()
    a, b = await clustered(bus), await clustered(bus)
    try:
        watcher = await RawClient.connect(a.port)
        await watcher.established()
        watcher.send_json({"event": "pusher:subscribe", "data": {"channel": "news"}})
        epoch = (await watcher.recv_json())["position"]["epoch"]
        hub_a = next(a.node.hubs())
        hub_a.publish("e", ["news"], "one", None, asyncio.get_running_loop().time())
        assert (await watcher.recv_json())["offset"] == 1
        late = await RawClient.connect(b.port)
        await late.established()
        late.send_json(
            {
                "event": "pusher:subscribe",
                "data": {"channel": "news", "recover": {"epoch": epoch, "offset": 0}},
            }
        )
        answer = await late.recv_json()
        assert answer["recovered"] is True and answer["position"] == {"epoch": epoch, "offset": 1}
        assert (await late.recv_json())["data"] == "one"
        watcher.close()
        late.close()
    finally:
        await a.shutdown()
        await b.shutdown()
