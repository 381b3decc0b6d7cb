"""Lean client-side protocols for the load client.

``WSConn`` is a raw ``asyncio.Protocol`` WebSocket client with its own minimal framing, the
one every Python benchmark client builds on (the soak's connections subclass it): it sends
the upgrade request, checks ``Sec-WebSocket-Accept``, subscribes to one channel as soon as
``pusher:connection_established`` arrives, answers ``pusher:ping`` and counts every other text
frame without decoding it (the per-frame cost is one header parse and one ``bytes.find``).
With ``seen`` set, it also counts each event's sequence number (the 8 digits its data starts
with), for exactly-once checks; with ``lat`` set, it keeps its own latency samples.
``HttpConn`` is a keep-alive HTTP/1.1 client on httptools; ``Signer`` builds freshly signed
``POST /apps/{id}/events`` requests.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import time
from collections.abc import Callable
from typing import Any

import httptools
import orjson

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PONG = b'{"event":"pusher:pong","data":{}}'


def _noop(conn: Any, info: str) -> None:
    return None


def mask_bytes(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    if n == 0:
        return b""
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "little")
    return (int.from_bytes(payload, "little") ^ key).to_bytes(n, "little")


def masked(payload: bytes, opcode: int = 0x1) -> bytes:
    """One client frame (FIN, a random mask) carrying ``payload`` (at most 65 535 bytes)."""
    n, mask = len(payload), os.urandom(4)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    else:
        head = bytes((0x80 | opcode, 0xFE)) + n.to_bytes(2, "big")
    return head + mask + mask_bytes(payload, mask)


def upgrade_request(host: str, port: int, key: str, client: str, ws_key: bytes) -> bytes:
    """The WebSocket upgrade request of a Pusher protocol 7 client to app ``key``."""
    return (
        f"GET /app/{key}?protocol=7&client={client}&version=1.0 HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {ws_key.decode()}\r\n\r\n"
    ).encode()


def accept_of(ws_key: bytes) -> bytes:
    """The ``Sec-WebSocket-Accept`` a server answers ``ws_key`` with."""
    return base64.b64encode(hashlib.sha1(ws_key + GUID).digest())


class Stats:
    """State shared by every connection of one load-client process."""

    def __init__(self) -> None:
        self.counted = 0  # non-pusher text frames received (fan-out deliveries)
        self.last_rx = 0.0  # perf_counter() of the latest read on any WebSocket
        self.goal = 1 << 62  # when counted reaches goal, on_goal() is called
        self.on_goal: Callable[[], None] = lambda: None
        self.latency = False  # decode counted frames: data is a perf_counter_ns() stamp
        self.lat_ns: list[int] = []
        self.pings = 0  # pusher:ping frames received (each answered with pusher:pong)
        self.errors = 0  # pusher:error / subscription_error / close frames received
        self.dropped = 0  # subscribed connections lost without us closing them
        self.samples: list[str] = []  # a few error descriptions
        self.on_sub: Callable[[WSConn, str], None] = _noop
        self.on_fail: Callable[[WSConn | None, str], None] = _noop

    def note(self, what: str) -> None:
        if len(self.samples) < 8:
            self.samples.append(what)


class WSConn(asyncio.Protocol):
    __slots__ = (
        *("accept", "buf", "channel", "closing", "handshake", "lat"),
        *("lost", "ready", "request", "seen", "sid", "stats", "transport"),
    )

    def __init__(
        self, stats: Stats, host: str, port: int, key: str, channel: str, client: str = "bench"
    ) -> None:
        ws_key = base64.b64encode(os.urandom(16))
        self.accept = accept_of(ws_key)
        self.request: bytes | None = upgrade_request(host, port, key, client, ws_key)
        self.stats = stats
        self.channel = channel
        self.handshake: bytes | None = b""
        self.buf = b""
        self.sid = ""
        self.ready = self.closing = self.lost = False
        self.transport: asyncio.Transport | None = None
        self.seen: bytearray | None = None  # receipts per event sequence number
        self.lat: list[int] | None = None  # this connection's latency samples, ns

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request or b"")  # type: ignore[attr-defined]
        self.request = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.closing:
            return
        if self.ready:
            self.stats.dropped += 1
            self.stats.note(f"dropped: {exc!r}")
        else:
            self.stats.on_fail(self, f"lost before subscribed: {exc!r}")

    def close(self) -> None:
        self.closing = True
        if self.transport is not None and not self.lost:
            self.transport.close()

    def send(self, payload: bytes, opcode: int = 0x1) -> None:
        if self.transport is not None and not self.lost:
            self.transport.write(masked(payload, opcode))

    def subscribe(self, channel: str) -> None:
        self.send(orjson.dumps({"event": "pusher:subscribe", "data": {"channel": channel}}))

    def data_received(self, data: bytes) -> None:
        if self.handshake is not None:
            data = self.handshake + data
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.handshake = data
                return
            if not data.startswith(b"HTTP/1.1 101") or self.accept not in data[:end]:
                self.closing = True
                self.refused(data.split(b"\r", 1)[0])
                if self.transport is not None:
                    self.transport.close()
                return
            self.handshake = None
            self.opened()
            data = data[end + 4 :]
        if self.buf:
            data, self.buf = self.buf + data, b""
        st = self.stats
        now_ns = time.perf_counter_ns() if st.latency else 0
        pos, end = 0, len(data)
        while end - pos >= 2:
            size = data[pos + 1] & 0x7F
            start = pos + 2
            if size == 126:
                start += 2
                size = int.from_bytes(data[pos + 2 : pos + 4], "big")
            elif size == 127:
                start += 8
                size = int.from_bytes(data[pos + 2 : pos + 10], "big")
            stop = start + size
            if stop > end:
                break
            opcode = data[pos] & 0x0F
            pos = stop
            if opcode == 1:
                if data.find(b"pusher", start, stop) >= 0:
                    self.control(data[start:stop])
                else:
                    st.counted += 1
                    if st.latency:
                        self.stamp(data[start:stop], now_ns)
                    if self.seen is not None:
                        self.track(data, start, stop)
            elif opcode == 9 and self.transport is not None:
                ping = data[start:stop][:125]  # a zero mask key leaves the payload as is
                self.transport.write(bytes((0x8A, 0x80 | len(ping))) + b"\0\0\0\0" + ping)
            elif opcode == 8:
                self.closed_by_server(int.from_bytes(data[start : start + 2], "big"))
        if pos < end:
            self.buf = data[pos:]
        st.last_rx = time.perf_counter()
        if st.counted >= st.goal:
            st.on_goal()

    # -- hooks a subclass may replace (the soak's connections do) ---------------------------

    def opened(self) -> None:
        """The handshake succeeded."""

    def refused(self, status: bytes) -> None:
        """The server did not switch protocols (``status``: its status line)."""
        self.stats.on_fail(self, f"handshake: {status!r}")

    def closed_by_server(self, code: int) -> None:
        """A close frame arrived."""
        self.stats.errors += 1
        self.stats.note(f"close frame {code}")

    def stamp(self, payload: bytes, now_ns: int) -> None:
        try:  # data: 8-digit sequence number, then the sender's perf_counter_ns()
            sample = now_ns - int(orjson.loads(payload)["data"][8:])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            self.stats.note(f"not a latency event: {payload[:80]!r}")
            return
        self.stats.lat_ns.append(sample)
        if self.lat is not None:
            self.lat.append(sample)

    def track(self, data: bytes, start: int, stop: int) -> None:
        at = data.find(b'"data":"', start, stop) + 8
        seen = self.seen
        try:
            seq = int(data[at : at + 8]) if at > 7 else -1
        except ValueError:
            seq = -1
        if seen is None or not 0 <= seq < 1 << 20:
            self.stats.note(f"no sequence number: {data[start : start + 80]!r}")
            return
        if seq >= len(seen):
            seen.extend(bytes(seq + 1 - len(seen)))
        if seen[seq] < 255:
            seen[seq] += 1

    def control(self, payload: bytes) -> None:
        st = self.stats
        try:
            msg = orjson.loads(payload)
            event = msg["event"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            st.errors += 1
            st.note(f"bad frame {payload[:80]!r}")
            return
        if event == "pusher:ping":
            st.pings += 1
            self.send(PONG)
        elif event == "pusher_internal:subscription_succeeded":
            self.ready = True
            st.on_sub(self, str(msg.get("channel")))
        elif event == "pusher:connection_established":
            self.sid = str(orjson.loads(msg["data"])["socket_id"])
            self.subscribe(self.channel)
        elif event in ("pusher:error", "pusher:subscription_error"):
            st.errors += 1
            st.note(f"{event} {msg.get('data')!r}")


class Signer:
    """Freshly signed ``POST /apps/{id}/events`` requests (Pusher HTTP API auth_version 1.0)."""

    def __init__(self, app_id: str, key: str, secret: str, host: str, port: int) -> None:
        self.path = f"/apps/{app_id}/events"
        self.key = key
        self.secret = secret.encode()
        self.host = f"{host}:{port}"

    def request(self, body: bytes) -> bytes:
        query = (
            f"auth_key={self.key}&auth_timestamp={int(time.time())}&auth_version=1.0"
            f"&body_md5={hashlib.md5(body).hexdigest()}"
        )
        signed = f"POST\n{self.path}\n{query}".encode()
        signature = hmac.digest(self.secret, signed, "sha256").hex()
        return (
            f"POST {self.path}?{query}&auth_signature={signature} HTTP/1.1\r\n"
            f"Host: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body


class HttpConn(asyncio.Protocol):
    """Keep-alive HTTP/1.1 client, one request in flight; status 0 means connection lost."""

    def __init__(self) -> None:
        self.parser: Any = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[int] | None = None
        self.on_response: Callable[[HttpConn, int], None] = lambda conn, status: None
        self.pending = False
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.pending:
            self.complete(0)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_message_complete(self) -> None:
        self.complete(int(self.parser.get_status_code()))

    def complete(self, status: int) -> None:
        self.pending = False
        waiter, self.waiter = self.waiter, None
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(status)
        else:
            self.on_response(self, status)

    def send(self, request: bytes) -> None:
        if self.lost or self.transport is None:
            self.complete(0)
            return
        self.pending = True
        self.transport.write(request)

    def call(self, request: bytes) -> asyncio.Future[int]:
        self.waiter = asyncio.get_running_loop().create_future()
        waiter = self.waiter
        self.send(request)
        return waiter
