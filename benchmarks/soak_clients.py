"""The soak's clients: connections that churn (presence with auth, pings answered), what the
client knows to be true, and the churn itself."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from benchmarks.credentials import Creds, channel_auth
from benchmarks.wsclient import PONG, HttpConn, Signer, Stats, WSConn


@dataclass
class Truth:
    """What the client knows: open connections, acknowledged subscriptions."""

    connections: int = 0
    subs: Counter[str] = field(default_factory=Counter)
    users: dict[str, set[str]] = field(default_factory=dict)
    dropped: int = 0  # connections the server closed
    failed: int = 0  # connections that never subscribed
    errors: Counter[str] = field(default_factory=Counter)


class SoakConn(WSConn):
    """One connection: handshake, subscribe (presence with auth), answer pings, count events
    (in ``stats.counted``, shared by every connection of the soak)."""

    def __init__(
        self, truth: Truth, stats: Stats, creds: Creds, port: int, channel: str, user: str
    ) -> None:
        super().__init__(stats, "127.0.0.1", port, creds.key, channel, client="soak")
        self.truth, self.creds, self.user = truth, creds, user
        self.open = self.subscribed = False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.closing:
            if self.subscribed:
                self.truth.dropped += 1
            else:
                self.truth.failed += 1
        self.forget()

    def forget(self) -> None:
        """Leave the truth (at once when we close: the server is told just after)."""
        if self.subscribed:
            self.subscribed = False
            self.truth.subs[self.channel] -= 1
            if self.user:
                self.truth.users[self.channel].discard(self.user)
        if self.open:
            self.open = False
            self.truth.connections -= 1

    def end(self, abrupt: bool) -> None:
        """Close: with a close frame, or ``abrupt`` (no close frame, no FIN: a reset)."""
        self.closing = True
        self.forget()
        if self.transport is None:
            return
        if abrupt:
            self.transport.abort()
        else:
            self.send(b"\x03\xe8", 0x8)
            self.transport.close()

    def opened(self) -> None:
        self.open = True
        self.truth.connections += 1

    def refused(self, status: bytes) -> None:
        self.truth.errors["handshake"] += 1

    def closed_by_server(self, code: int) -> None:
        self.truth.errors["close frame"] += 1

    def control(self, payload: bytes) -> None:
        message = json.loads(payload)
        event = message.get("event")
        if event == "pusher:ping":
            self.send(PONG)
        elif event == "pusher:connection_established":
            socket_id = json.loads(message["data"])["socket_id"]
            data: dict[str, Any] = {"channel": self.channel}
            if self.user:
                channel_data = json.dumps({"user_id": self.user})
                data["channel_data"] = channel_data
                data["auth"] = channel_auth(self.creds, socket_id, self.channel, channel_data)
            self.send(json.dumps({"event": "pusher:subscribe", "data": data}).encode())
        elif event == "pusher_internal:subscription_succeeded":
            if message.get("channel") == self.channel and not self.subscribed and not self.closing:
                self.subscribed = True
                self.truth.subs[self.channel] += 1
                if self.user:
                    self.truth.users.setdefault(self.channel, set()).add(self.user)
        elif event in ("pusher:error", "pusher:subscription_error"):
            self.truth.errors[str(event)] += 1


@dataclass
class Slot:
    channel: str
    user: str
    conn: SoakConn | None = None
    opening: bool = False  # a reconnection is under way: the churn leaves the slot alone


class Soak:
    def __init__(self, args: argparse.Namespace, ports: list[int], creds: Creds) -> None:
        self.args, self.ports, self.creds = args, ports, creds
        self.truth = Truth()
        self.stats = Stats()
        """Shared by every connection: ``stats.counted`` is the events received."""
        n = args.connections
        presence = n // 2
        self.slots: list[Slot] = []
        for i in range(presence):
            self.slots.append(Slot(f"presence-soak-{i // args.presence_size}", f"u{i}"))
        for i in range(n - presence):
            self.slots.append(Slot(f"soak-{i // args.public_size}", ""))
        self.channels = sorted({slot.channel for slot in self.slots})
        self.inflight = asyncio.Semaphore(args.concurrency)
        self.reconnects = 0
        self.published = self.api_failures = 0

    async def open(self, slot: Slot, port: int) -> None:
        loop = asyncio.get_running_loop()
        slot.opening = True
        try:
            await self._open(slot, port, loop)
        finally:
            slot.opening = False

    async def _open(self, slot: Slot, port: int, loop: asyncio.AbstractEventLoop) -> None:
        async with self.inflight:
            try:
                _, conn = await loop.create_connection(
                    lambda: SoakConn(
                        self.truth, self.stats, self.creds, port, slot.channel, slot.user
                    ),
                    "127.0.0.1",
                    port,
                )
            except OSError as exc:
                self.truth.errors[f"connect {type(exc).__name__}"] += 1
                return
            slot.conn = conn
            deadline = time.monotonic() + 10
            while not conn.subscribed and not conn.closing and time.monotonic() < deadline:
                await asyncio.sleep(0.02)  # hold the handshake slot until subscribed

    async def connect_all(self) -> float:
        started = time.monotonic()
        await asyncio.gather(
            *(self.open(slot, self.ports[i % len(self.ports)]) for i, slot in enumerate(self.slots))
        )
        return time.monotonic() - started

    async def churn(self, stop: asyncio.Event) -> None:
        per_second = max(1, round(self.args.churn * len(self.slots)))
        pending: set[asyncio.Task[None]] = set()
        abrupt = False
        while not stop.is_set():
            tick = time.monotonic()
            for slot in random.sample(self.slots, per_second):
                if slot.opening:
                    continue
                if slot.conn is not None:
                    abrupt = not abrupt
                    slot.conn.end(abrupt)
                    slot.conn = None
                self.reconnects += 1
                task = asyncio.ensure_future(self.open(slot, random.choice(self.ports)))
                pending.add(task)
                task.add_done_callback(pending.discard)
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def publish(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        conns: dict[int, HttpConn] = {}
        interval, turn = 1.0 / self.args.rate, 0
        next_at = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at + interval, time.monotonic() - 1.0)
            port = self.ports[turn % len(self.ports)]
            channel = self.channels[turn % len(self.channels)]
            turn += 1
            body = json.dumps({"name": "e", "channel": channel, "data": str(turn)}).encode()
            signer = Signer(self.creds.app_id, self.creds.key, self.creds.secret, "127.0.0.1", port)
            try:
                conn = conns.get(port)
                if conn is None or conn.lost:
                    opening = loop.create_connection(HttpConn, "127.0.0.1", port)
                    conn = conns[port] = (await asyncio.wait_for(opening, 2))[1]
                status = await asyncio.wait_for(conn.call(signer.request(body)), 5)
            except (OSError, TimeoutError):
                status = 0
            if status == 200:
                self.published += 1
            else:
                self.api_failures += 1
                conns.pop(port, None)
        for conn in conns.values():
            if conn.transport is not None:
                conn.transport.close()
