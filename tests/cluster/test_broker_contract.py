"""One contract, every broker: the memory bus, a real Redis and a real Redis Cluster (see
cluster/broker.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
import pytest_asyncio

from overtone.cluster.broker import Broker, StreamAppend
from overtone.cluster.memory_broker import MemoryBroker, MemoryBus
from overtone.cluster.redis_broker import RedisBroker
from overtone.config import Scaling
from support.redis_ha import RedisClusterSet
from support.redis_server import RedisServer
from support.servers import scaled


@dataclass
class Endpoint:
    """A broker and what it received."""

    received: list[bytes] = field(default_factory=list)
    connects: int = 0
    broker: Broker | None = None

    def on_message(self, data: bytes) -> None:
        decoded = json.loads(data)  # one envelope, or several as a JSON array
        for envelope in decoded if isinstance(decoded, list) else [decoded]:
            self.received.append(json.dumps(envelope).encode())

    def on_connected(self) -> None:
        self.connects += 1


Factory = Callable[[Endpoint], Broker]
Outage = Callable[[bool], None] | None
"""Stops (``False``) or restarts (``True``) the Redis of a test; ``None`` for the memory bus."""
LOST = json.dumps({"n": "a", "m": "lost"}).encode()
AFTER = json.dumps({"n": "a", "m": "after"}).encode()


@pytest_asyncio.fixture(params=["memory", "redis", "redis-cluster"])
async def make_broker(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Factory, Outage]]:
    created: list[Broker] = []
    outage: Outage = None
    if request.param == "memory":
        bus = MemoryBus()

        def factory(end: Endpoint) -> Broker:
            broker = bus.broker(end.on_message, end.on_connected)
            created.append(broker)
            return broker
    else:
        if request.param == "redis":
            redis: RedisServer = request.getfixturevalue("redis_server")
            scaling = Scaling(redis_url=redis.url, channel="contract")
            outage = lambda up: redis.start() if up else redis.stop()  # noqa: E731
        else:
            cluster: RedisClusterSet = request.getfixturevalue("redis_cluster")
            scaling = Scaling(
                redis_url="redis://", channel="contract", cluster_nodes=cluster.node_addresses
            )
            outage = lambda up: cluster.restart() if up else cluster.stop()  # noqa: E731

        def factory(end: Endpoint) -> Broker:
            broker = RedisBroker(scaling, end.on_message, end.on_connected)
            created.append(broker)
            return broker

    yield factory, outage
    for broker in created:
        await broker.close(timeout=0.5)


async def eventually(check: Callable[[], bool], timeout: float = 5) -> None:
    deadline = asyncio.get_running_loop().time() + scaled(timeout)
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def started(factory: Factory) -> Endpoint:
    end = Endpoint()
    end.broker = factory(end)
    await end.broker.start()
    await eventually(lambda: end.connects == 1 and end.broker is not None and end.broker.connected)
    return end


async def test_envelopes_reach_every_other_broker_in_order(
    make_broker: tuple[Factory, Outage],
) -> None:
    factory, _ = make_broker
    a, b, c = [await started(factory) for _ in range(3)]
    assert a.broker is not None
    sent = [json.dumps({"n": "a", "m": i}).encode() for i in range(200)]
    for envelope in sent:
        a.broker.publish(envelope)
    await eventually(lambda: len(b.received) == 200 and len(c.received) == 200)
    assert b.received == sent and c.received == sent
    assert a.received == sent  # the publisher reads its own envelopes too


async def test_outage_drops_then_reconnects_and_says_so(
    make_broker: tuple[Factory, Outage],
) -> None:
    factory, redis_outage = make_broker
    a, b = await started(factory), await started(factory)
    assert a.broker is not None and b.broker is not None

    def outage(up: bool) -> None:
        if redis_outage is None:
            assert isinstance(a.broker, MemoryBroker)
            a.broker.bus.set_up(up)
        else:
            redis_outage(up)

    outage(False)
    await eventually(lambda: not a.broker.connected)  # type: ignore[union-attr]
    a.broker.publish(LOST)
    assert a.broker.dropped >= 1
    outage(True)
    await eventually(lambda: a.connects == 2 and b.connects == 2, timeout=15)
    a.broker.publish(AFTER)
    await eventually(lambda: AFTER in b.received)
    assert LOST not in b.received


def stream_append(
    channel: str, name: str, max_events: int = 3, exclude: str | None = None
) -> StreamAppend:
    payload = json.dumps({"event": name, "channel": channel, "data": name}).encode()
    return StreamAppend("app", channel, payload, max_events, 60.0, exclude)


async def test_appends_are_numbered_stored_and_delivered_with_their_positions(
    make_broker: tuple[Factory, Outage],
) -> None:
    factory, _ = make_broker
    a, b = await started(factory), await started(factory)
    assert a.broker is not None and b.broker is not None
    raw: list[bytes] = []
    b.broker.on_message = raw.append  # type: ignore[attr-defined]
    empty = await a.broker.stream("app", "fresh", 60.0)
    assert empty is not None and empty.offset == 0 and empty.entries == []
    for i in range(5):
        envelope = json.dumps({"n": "a", "m": i}).encode()
        exclude = "1.2" if i == 3 else None  # e3 was not sent to socket 1.2
        appends = [stream_append("news", f"e{i}", exclude=exclude), stream_append("other", "x")]
        a.broker.publish(envelope, appends)
    positions: list[list[object]] = []
    envelopes: list[object] = []

    def unpack() -> bool:
        while raw:
            delivered = json.loads(raw.pop(0))  # several publishes may come as one
            positions.extend(delivered["q"])
            inner = delivered["e"]
            envelopes.extend(inner if isinstance(inner, list) else [inner])
        return len(envelopes) == 5

    await eventually(unpack)
    news_epoch = positions[0][0]
    assert positions[0::2] == [[news_epoch, i] for i in range(1, 6)]
    assert [p[1] for p in positions[1::2]] == [1, 2, 3, 4, 5]
    assert envelopes == [{"n": "a", "m": i} for i in range(5)]
    snapshot = await b.broker.stream("app", "news", 60.0)
    assert snapshot is not None
    assert (snapshot.epoch, snapshot.offset) == (news_epoch, 5)
    assert [offset for offset, _, _ in snapshot.entries] == [3, 4, 5]  # max_events = 3
    assert snapshot.excluded == {4: "1.2"}
    assert [json.loads(p) for _, _, p in snapshot.entries][-1] == {
        "event": "e4",
        "channel": "news",
        "data": "e4",
        "offset": 5,
    }
    a.broker.publish(b'{"n":"a","m":"reset"}', [], [("app", "news")])
    await eventually(lambda: len(raw) == 1)
    again = await b.broker.stream("app", "news", 60.0)
    assert again is not None and again.epoch != news_epoch and again.offset == 0
