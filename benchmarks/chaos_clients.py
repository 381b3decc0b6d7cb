"""The chaos scenario's clients: Pusher-protocol subscribers that reconnect through the nodes
and count every event (optionally recovering), and the publisher of numbered events."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import random
import struct
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from benchmarks.credentials import Creds, channel_auth
from benchmarks.wsclient import GUID, HttpConn, Signer, mask_bytes


class Lost(Exception):
    """The connection ended (EOF, reset, close frame)."""


@dataclass
class Gap:
    """One lost connection: when it was lost, when the channel was subscribed again, and how
    the resubscription was answered (``None``: not asked to recover)."""

    lost: float
    back: float = 0.0
    recovered: bool | None = None
    received_before: int = 0  # receipts before the loss (index into ``Client.order``)
    unasked: bool = False
    """The server said ``recovered: false`` on a running subscription (after a cluster
    outage): ``lost`` is when the stream was last seen whole, ``back`` when it was said."""


@dataclass
class Client:
    name: str
    kind: str  # plain | recovering | presence
    channel: str
    ports: list[int]
    home: int  # index of the first node
    creds: Creds
    user: str = ""
    received: Counter[int] = field(default_factory=Counter)
    order: list[int] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    first_sub: float = 0.0
    subscribed: bool = False
    connected: bool = False
    node: int = -1
    position: tuple[str, int] | None = None
    intact: float = 0.0  # when the stream was last seen whole (subscribed, or in order)
    anomalies: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    writer: asyncio.StreamWriter | None = None

    @property
    def recovering(self) -> bool:
        return self.kind == "recovering"

    async def run(self, stop: asyncio.Event) -> None:
        """Stay subscribed until ``stop``: reconnect to the next node that accepts."""
        index = self.home
        while not stop.is_set():
            port = self.ports[index % len(self.ports)]
            try:
                await self.session(port, index % len(self.ports), stop)
            except (OSError, Lost, asyncio.IncompleteReadError, TimeoutError) as exc:
                if len(self.errors) < 5:
                    self.errors.append(f"{port}: {exc!r}"[:120])
            finally:
                self.connected = False
                if self.writer is not None:
                    self.writer.close()
                    self.writer = None
            if stop.is_set():
                return
            if self.subscribed:
                self.subscribed = False
                self.gaps.append(Gap(time.monotonic(), received_before=len(self.order)))
            index += 1  # the load balancer sends the next attempt to another node
            await asyncio.sleep(random.uniform(0.05, 0.3))

    async def session(self, port: int, node: int, stop: asyncio.Event) -> None:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 3)
        self.writer = writer
        key = base64.b64encode(os.urandom(16))
        writer.write(
            f"GET /app/{self.creds.key}?protocol=7&client=chaos&version=1.0 HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key.decode()}\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        if not head.startswith(b"HTTP/1.1 101") or accept not in head:
            raise Lost(f"handshake {head[:40]!r}")
        self.connected, self.node = True, node
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while True:
                read = asyncio.ensure_future(self.frame(reader))
                done, _ = await asyncio.wait({read, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if stopping in done:
                    read.cancel()
                    with contextlib.suppress(BaseException):
                        await read
                    return
                opcode, payload = read.result()
                if opcode == 0x1:
                    self.text(payload)
                elif opcode == 0x9:
                    self.send(payload[:125], 0xA)
                elif opcode == 0x8:
                    raise Lost("close frame")
        finally:
            stopping.cancel()

    @staticmethod
    async def frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
        head = await reader.readexactly(2)
        length = head[1] & 0x7F
        if length == 126:
            length = struct.unpack("!H", await reader.readexactly(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", await reader.readexactly(8))[0]
        return head[0] & 0x0F, await reader.readexactly(length)

    def send(self, payload: bytes, opcode: int = 0x1) -> None:
        if self.writer is None:
            return
        n, mask = len(payload), os.urandom(4)
        if n < 126:
            head = bytes((0x80 | opcode, 0x80 | n))
        else:
            head = bytes((0x80 | opcode, 0xFE)) + n.to_bytes(2, "big")
        self.writer.write(head + mask + mask_bytes(payload, mask))

    def text(self, payload: bytes) -> None:
        message = json.loads(payload)
        event = message.get("event")
        if event == "pusher:connection_established":
            self.subscribe(json.loads(message["data"])["socket_id"])
        elif event == "pusher:ping":
            self.send(b'{"event":"pusher:pong","data":{}}')
        elif event == "pusher_internal:subscription_succeeded":
            self.subscribed_now(message)
        elif event in ("pusher:error", "pusher:subscription_error"):
            self.anomalies[str(event)] += 1
        elif event == "e" and message.get("channel") == self.channel:
            self.event(message)

    def subscribe(self, socket_id: str) -> None:
        data: dict[str, Any] = {"channel": self.channel}
        if self.channel.startswith("presence-"):
            channel_data = json.dumps({"user_id": self.user})
            data["channel_data"] = channel_data
            data["auth"] = channel_auth(self.creds, socket_id, self.channel, channel_data)
        if self.recovering and self.position is not None:
            data["recover"] = {"epoch": self.position[0], "offset": self.position[1]}
        self.send(json.dumps({"event": "pusher:subscribe", "data": data}).encode())

    def subscribed_now(self, message: dict[str, Any]) -> None:
        now = time.monotonic()
        running = self.subscribed and not (self.gaps and not self.gaps[-1].back)
        if running and message.get("recovered") is False:  # told to reload, unasked
            gap = Gap(self.intact, now, False, len(self.order), unasked=True)
            self.gaps.append(gap)
            self.position = None
        self.subscribed = True
        if not self.first_sub:
            self.first_sub = now
        position = message.get("position")
        at = (str(position["epoch"]), int(position["offset"])) if position else None
        recovered = message.get("recovered")
        if self.gaps and not self.gaps[-1].back:
            gap = self.gaps[-1]
            gap.back = now
            gap.recovered = recovered if isinstance(recovered, bool) else None
        if self.recovering and recovered is True and self.position is not None and at:
            self.position = (at[0], self.position[1])  # the missed events follow
        else:
            self.position = at
        self.intact = now

    def event(self, message: dict[str, Any]) -> None:
        seq = int(message["data"])
        self.received[seq] += 1
        self.order.append(seq)
        offset = message.get("offset")
        if not isinstance(offset, int):
            self.anomalies["no offset"] += 1
            return
        if self.position is None:
            return
        epoch, last = self.position
        if offset == last + 1:
            self.intact = time.monotonic()
        if offset != last + 1:
            self.anomalies["offset jump" if offset > last else "offset went back"] += 1
        if offset > last:  # as the recovery add-on: the position only moves forward
            self.position = (epoch, offset)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# -- the publisher -----------------------------------------------------------------------------


@dataclass
class Published:
    seq: int
    node: int
    sent: float
    done: float
    status: int


@dataclass
class Publisher:
    creds: Creds
    ports: list[int]
    channels: list[str]
    rate: float
    log: list[Published] = field(default_factory=list)
    conns: dict[int, HttpConn] = field(default_factory=dict)
    down_until: dict[int, float] = field(default_factory=dict)

    async def run(self, stop: asyncio.Event) -> None:
        seq, turn = 0, 0
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            if now < next_at:
                await asyncio.sleep(next_at - now)
            next_at = max(next_at + interval, time.monotonic() - 1.0)
            seq += 1
            for _ in range(len(self.ports)):  # a load balancer skips a node that failed
                node = turn % len(self.ports)
                turn += 1
                if self.down_until.get(node, 0.0) <= time.monotonic():
                    break
            await self.publish(seq, node)

    async def publish(self, seq: int, node: int) -> None:
        port = self.ports[node]
        body = json.dumps({"name": "e", "channels": self.channels, "data": str(seq)}).encode()
        sent = time.monotonic()
        status = 0
        try:
            conn = self.conns.get(node)
            if conn is None or conn.lost:
                loop = asyncio.get_running_loop()
                opening = loop.create_connection(HttpConn, "127.0.0.1", port)
                conn = self.conns[node] = (await asyncio.wait_for(opening, 2))[1]
            creds = self.creds
            signer = Signer(creds.app_id, creds.key, creds.secret, "127.0.0.1", port)
            status = await asyncio.wait_for(conn.call(signer.request(body)), 3)
        except (OSError, TimeoutError):
            status = 0
        if status != 200:
            self.down_until[node] = time.monotonic() + 1.0
            bad = self.conns.pop(node, None)
            if bad is not None and bad.transport is not None:
                bad.transport.close()
        self.log.append(Published(seq, node, sent, time.monotonic(), status))

    def close(self) -> None:
        for conn in self.conns.values():
            if conn.transport is not None:
                conn.transport.close()
