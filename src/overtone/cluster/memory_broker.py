"""An in-process broker: several nodes in one process (tests, embedding), no Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import orjson

from overtone.channels.history import StreamSnapshot
from overtone.cluster.broker import OnConnected, OnMessage, StreamAppend, StreamRef
from overtone.cluster.sequencer import MemorySequencer


class MemoryBus:
    """The shared channel of every :class:`MemoryBroker` created from it."""

    def __init__(self) -> None:
        self.brokers: list[MemoryBroker] = []
        self.up = True
        self.sequencer = MemorySequencer()

    def broker(self, on_message: OnMessage, on_connected: OnConnected) -> MemoryBroker:
        """A new broker on this bus (a :data:`~overtone.cluster.broker.BrokerFactory`)."""
        return MemoryBroker(self, on_message, on_connected)

    def set_up(self, up: bool) -> None:
        """Simulate an outage (``False``) or a recovery (``True``) of the shared channel."""
        self.up = up
        for broker in self.brokers:
            broker.connected = up
            if up:
                asyncio.get_running_loop().call_soon(broker.on_connected)


class MemoryBroker:
    """Delivers envelopes to every broker of its bus (itself included) on the next loop
    iteration, in one order for all, as Redis pub/sub does."""

    def __init__(self, bus: MemoryBus, on_message: OnMessage, on_connected: OnConnected) -> None:
        self.bus = bus
        self.on_message = on_message
        self.on_connected = on_connected
        self.connected = False
        self.dropped = 0

    async def start(self) -> None:
        self.bus.brokers.append(self)
        self.connected = self.bus.up
        if self.connected:
            asyncio.get_running_loop().call_soon(self.on_connected)

    def publish(
        self,
        envelope: bytes,
        appends: Sequence[StreamAppend] = (),
        resets: Sequence[StreamRef] = (),
    ) -> None:
        if not self.connected:
            self.dropped += 1
            return
        if appends or resets:
            positions = self.bus.sequencer.sequence(appends, resets, time.time())
            envelope = b'{"q":%s,"e":%s}' % (orjson.dumps(positions), envelope)
        loop = asyncio.get_running_loop()
        for broker in self.bus.brokers:  # ourselves included, as Redis does
            loop.call_soon(broker.on_message, envelope)

    async def stream(self, app_id: str, channel: str, ttl: float) -> StreamSnapshot | None:
        await asyncio.sleep(0)
        if not self.connected:
            return None
        snapshot = self.bus.sequencer.stream(app_id, channel, ttl, time.time())
        arrived = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(arrived.set_result, None)  # after queued envelopes
        await arrived
        return snapshot

    async def close(self, timeout: float = 2.0) -> None:
        await asyncio.sleep(0)
        if self in self.bus.brokers:
            self.bus.brokers.remove(self)
        self.connected = False

    async def peers(self) -> int:
        return len(self.bus.brokers) - 1 if self.connected else 0
