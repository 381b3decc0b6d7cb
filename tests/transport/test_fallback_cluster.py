"""HTTP fallback sessions on a cluster behind a load balancer that spreads every request
round-robin (three in-process nodes on one in-process broker): every request reaches its
session, and events published through every node arrive once each (in the broker's order,
which may differ from the order the requests were sent in)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest_asyncio

from overtone.cluster.memory_broker import MemoryBus
from overtone.config import load_settings
from overtone.server import Server
from support.fallback_client import Client, messages
from support.inprocess import BASE_ENV
from support.servers import scaled
from transport.test_fallback import publish

ENV = {**BASE_ENV, "OVERTONE_HTTP_SESSION_TIMEOUT": "3", "OVERTONE_HTTP_POLL_TIMEOUT": "1"}


class RoundRobin(Client):
    """A fallback client whose every request goes to the next node."""

    def __init__(self, ports: list[int]) -> None:
        super().__init__(ports[0])
        self.ports = itertools.cycle(ports)

    def target(self, kind: str) -> str:
        self.port = next(self.ports)
        return super().target(kind)


@pytest_asyncio.fixture
async def nodes() -> AsyncIterator[list[Server]]:
    bus = MemoryBus()
    servers = [Server(load_settings(ENV), broker_factory=bus.broker) for _ in range(3)]
    for server in servers:
        await server.start()
    yield servers
    for server in servers:
        await server.shutdown()


async def test_polling_round_robin_over_three_nodes(nodes: list[Server]) -> None:
    client = RoundRobin([n.port for n in nodes])
    _, _, body = await client.poll()
    assert body.startswith("o\n")
    await client.send({"event": "pusher:subscribe", "data": {"channel": "news"}})
    received: list[dict[str, object]] = []
    deadline = asyncio.get_running_loop().time() + scaled(10)
    while not any(m.get("event") == "pusher_internal:subscription_succeeded" for m in received):
        assert asyncio.get_running_loop().time() < deadline
        _, _, body = await client.poll()
        received += [
            m for line in body.splitlines() if line.startswith("a[") for m in messages(line)
        ]
    for n in range(30):
        assert await publish(nodes[n % 3], "news", "e", f"{n:03d}") == 200
    events: list[str] = []
    while len(events) < 30:
        assert asyncio.get_running_loop().time() < deadline + scaled(10)
        status, _, body = await client.poll()
        assert status == 200 and "c[" not in body, body
        for line in body.splitlines():
            if line.startswith("a["):
                events += [str(m["data"]) for m in messages(line) if m["event"] == "e"]
    assert sorted(events) == [f"{n:03d}" for n in range(30)]
    assert (
        sum(len(n.listener.fallback.sessions) for n in nodes if n.listener and n.listener.fallback)
        == 1
    )


async def test_streaming_round_robin_over_three_nodes(nodes: list[Server]) -> None:
    client = RoundRobin([n.port for n in nodes])
    _, _, first = await client.stream()  # opens the session on node 0
    assert await first.line() == "o"
    await first.line()
    first.close()
    await asyncio.sleep(0.05)
    _, _, stream = await client.stream()  # node 1 proxies node 0's session
    await client.send({"event": "pusher:subscribe", "data": {"channel": "news"}})  # node 2
    try:
        line = await stream.line()
        assert messages(line)[0]["event"] == "pusher_internal:subscription_succeeded", line
        for n in range(30):
            await publish(nodes[n % 3], "news", "e", f"{n:03d}")
        events: list[str] = []
        while len(events) < 30:
            line = await stream.line()
            assert line.startswith("a["), line
            events += [str(m["data"]) for m in messages(line)]
        assert sorted(events) == [f"{n:03d}" for n in range(30)]
        await client.send({"event": "pusher:ping", "data": {}})
        assert messages(await stream.line())[0]["event"] == "pusher:pong"
    finally:
        stream.close()
