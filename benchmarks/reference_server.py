"""Minimal raw-asyncio Pusher broadcast server: the yardstick overtone is compared against.

One ``asyncio.Protocol`` per socket, HTTP/1.1 parsed by httptools, the WebSocket handshake
computed by hand, a tiny masked-frame parser, and fan-out that encodes each event's frame once
and writes the same bytes to every subscriber. It speaks just enough Pusher for the benchmark:
``pusher:connection_established``, public ``pusher:subscribe``/``unsubscribe``, ``pusher:ping``,
signed ``POST /apps/{id}/events`` and ``GET /up``. No keepalive pings, no limits, no presence.

    REVERB_APP_ID=bench REVERB_APP_KEY=bench-key REVERB_APP_SECRET=bench-secret \
        python -m benchmarks.reference_server --host 127.0.0.1 --port 8080
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import os
import random
import signal
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httptools
import orjson

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PONG = b'{"event":"pusher:pong","data":{}}'
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final text frame (server to client)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


def unmask(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    if n == 0:
        return b""
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "little")
    return (int.from_bytes(payload, "little") ^ key).to_bytes(n, "little")


PONG_FRAME = text_frame(PONG)
SUCCEEDED = "pusher_internal:subscription_succeeded"
SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"


@dataclass
class Hub:
    app_id: str
    key: str
    secret: bytes
    node: int = field(default_factory=lambda: random.randint(1, 999_999_999))
    next_id: int = 0
    channels: dict[str, set[Conn]] = field(default_factory=dict)

    def socket_id(self) -> str:
        self.next_id += 1
        return f"{self.node}.{self.next_id}"

    def verify(self, method: str, path: str, query: str, body: bytes) -> str | None:
        params = dict(parse_qsl(query, keep_blank_values=True))
        signature = params.pop("auth_signature", "")
        if params.get("auth_key") != self.key:
            return "invalid auth_key"
        try:
            if abs(time.time() - int(params.get("auth_timestamp", ""))) > 600:
                return "timestamp expired"
        except ValueError:
            return "invalid auth_timestamp"
        if body and params.get("body_md5") != hashlib.md5(body).hexdigest():
            return "invalid body_md5"
        signed = "&".join(f"{k.lower()}={params[k]}" for k in sorted(params, key=str.lower))
        expected = hmac.new(self.secret, f"{method}\n{path}\n{signed}".encode(), "sha256")
        if not hmac.compare_digest(expected.hexdigest(), signature):
            return "invalid signature"
        return None

    def trigger(self, body: bytes) -> tuple[int, bytes]:
        try:
            event = orjson.loads(body)
            name, data = event["name"], event["data"]
            names = event.get("channels") or [event["channel"]]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return 400, b'{"error":"invalid event"}'
        for channel in names:  # socket_id exclusion is not implemented
            frame = text_frame(orjson.dumps({"event": name, "channel": channel, "data": data}))
            for conn in self.channels.get(channel, ()):
                conn.transport.write(frame)
        return 200, b"{}"


class Conn(asyncio.Protocol):
    __slots__ = ("body", "buf", "hub", "parser", "sid", "subs", "transport", "url", "ws_key")

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser: Any = httptools.HttpRequestParser(self)
        self.url = b""
        self.ws_key = b""
        self.body: list[bytes] = []
        self.buf = b""
        self.sid = ""
        self.subs: list[str] | None = None

    # transport callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        for channel in self.subs or ():
            subscribers = self.hub.channels.get(channel)
            if subscribers is not None:
                subscribers.discard(self)
                if not subscribers:
                    del self.hub.channels[channel]
        self.subs = None

    def data_received(self, data: bytes) -> None:
        if self.parser is None:
            self.frames(data)
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self.upgrade(data[upgrade.args[0] :])
        except httptools.HttpParserError:
            self.respond(400, b'{"error":"bad request"}', keep_alive=False)

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url, self.ws_key, self.body = b"", b"", []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"sec-websocket-key":
            self.ws_key = value

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.parser.should_upgrade():
            return  # handled by upgrade() once feed_data raises HttpParserUpgrade
        url = httptools.parse_url(self.url)
        path = url.path.decode()
        keep_alive = bool(self.parser.should_keep_alive())
        method = self.parser.get_method().decode()
        if method == "GET" and path == "/up":
            self.respond(200, b'{"health":"OK"}', keep_alive)
        elif method == "POST" and path == f"/apps/{self.hub.app_id}/events":
            body = b"".join(self.body)
            error = self.hub.verify(method, path, (url.query or b"").decode(), body)
            if error is not None:
                self.respond(401, orjson.dumps({"error": error}), keep_alive)
            else:
                self.respond(*self.hub.trigger(body), keep_alive=keep_alive)
        else:
            self.respond(404, b'{"error":"not found"}', keep_alive)

    def respond(self, status: int, body: bytes, keep_alive: bool) -> None:
        close = "" if keep_alive else "Connection: close\r\n"
        head = (
            f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{close}\r\n"
        )
        self.transport.write(head.encode() + body)
        if not keep_alive:
            self.transport.close()

    # WebSocket
    def upgrade(self, rest: bytes) -> None:
        path = httptools.parse_url(self.url).path.decode()
        if path != f"/app/{self.hub.key}" or not self.ws_key:
            self.respond(404, b'{"error":"not found"}', keep_alive=False)
            return
        accept = base64.b64encode(hashlib.sha1(self.ws_key + GUID).digest())
        self.parser, self.url, self.ws_key, self.body = None, b"", b"", []
        self.sid = self.hub.socket_id()
        data = orjson.dumps({"socket_id": self.sid, "activity_timeout": 30}).decode()
        hello = orjson.dumps({"event": "pusher:connection_established", "data": data})
        accepted = b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        self.transport.write(SWITCHING + accepted + text_frame(hello))
        if rest:
            self.frames(rest)

    def frames(self, data: bytes) -> None:
        if self.buf:
            data, self.buf = self.buf + data, b""
        pos, end = 0, len(data)
        while end - pos >= 6:
            head, size = data[pos], data[pos + 1]
            if not size & 0x80:
                self.close(1002)  # client frames must be masked
                return
            size &= 0x7F
            start = pos + 6
            if size == 126:
                start += 2
                size = int.from_bytes(data[pos + 2 : pos + 4], "big")
            elif size == 127:
                start += 8
                size = int.from_bytes(data[pos + 2 : pos + 10], "big")
            if start + size > end:
                break
            payload = unmask(data[start : start + size], data[start - 4 : start])
            pos = start + size
            opcode = head & 0x0F
            if opcode == 1 and head & 0x80:
                self.message(payload)
            elif opcode == 9:
                self.transport.write(bytes((0x8A, len(payload))) + payload)
            elif opcode == 8:
                self.close(1000)
                return
            elif opcode != 10:
                self.close(1003)
                return
        if pos < end:
            self.buf = data[pos:]

    def close(self, code: int) -> None:
        self.transport.write(b"\x88\x02" + code.to_bytes(2, "big"))
        self.transport.close()

    def message(self, payload: bytes) -> None:
        try:
            msg = orjson.loads(payload)
            event = msg["event"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        if event == "pusher:ping":
            self.transport.write(PONG_FRAME)
        elif event in ("pusher:subscribe", "pusher:unsubscribe"):
            channel = (msg.get("data") or {}).get("channel")
            if not isinstance(channel, str):
                return
            if event == "pusher:unsubscribe":
                self.hub.channels.get(channel, set()).discard(self)
            elif channel.startswith(("private-", "presence-")):
                reply = {"event": "pusher:subscription_error", "channel": channel}
                self.transport.write(text_frame(orjson.dumps(reply)))
            else:
                self.hub.channels.setdefault(channel, set()).add(self)
                if self.subs is None:
                    self.subs = []
                self.subs.append(channel)
                reply = {"event": SUCCEEDED, "channel": channel, "data": "{}"}
                self.transport.write(text_frame(orjson.dumps(reply)))


async def serve(host: str, port: int, hub: Hub) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Conn(hub), host, port, backlog=4096)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"Starting server on {host}:{port}", flush=True)
    await stop.wait()
    server.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    hub = Hub(
        app_id=os.environ.get("REVERB_APP_ID", "bench"),
        key=os.environ.get("REVERB_APP_KEY", "bench-key"),
        secret=os.environ.get("REVERB_APP_SECRET", "bench-secret").encode(),
    )
    try:
        import uvloop  # noqa: PLC0415

        uvloop.run(serve(args.host, args.port, hub))
    except ImportError:
        asyncio.run(serve(args.host, args.port, hub))


if __name__ == "__main__":
    main()
