"""Python cost of a handshake, a subscribe and a signed API request, without sockets.

A handshake here is a connection accepted (``connection_made``) and its upgrade request
handled, up to ``connection_established`` written.

Both servers' protocol objects (overtone's ``HttpConnection``, which hands an upgraded
socket to a ``WebSocketConnection``, and the reference's ``Conn``) are fed
the same bytes in one process, against a transport that only counts what is written. What
is left out is what both pay alike: the kernel, uvloop and the event loop. The figures are
per operation, measured over many live connections at once (so caches are as cold as in a
server), best of a few rounds, with the collector paused during each timed loop.

    python -m benchmarks.inprocess                 # 20 000 connections, 20 000 requests
    python -m benchmarks.inprocess --count 5000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import os
import time
from collections.abc import Callable
from typing import Any

from benchmarks import reference_server as reference
from benchmarks.wsclient import Signer, mask_bytes
from overtone.config import load_settings
from overtone.server import Server
from overtone.server.api_routes import ApiRoutes
from overtone.transport.context import ConnectionContext
from overtone.transport.http1 import HttpConnection

ENV = {"REVERB_APP_ID": "bench", "REVERB_APP_KEY": "bench-key", "REVERB_APP_SECRET": "bench-secret"}
HANDSHAKE = (
    b"GET /app/bench-key?protocol=7&client=js&version=8.4.0&flash=false HTTP/1.1\r\n"
    b"Host: 127.0.0.1:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)) + b"\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)
SUBSCRIBE_TEXT = b'{"event":"pusher:subscribe","data":{"channel":"bench"}}'
MASK = b"abcd"
SUBSCRIBE = bytes((0x81, 0x80 | len(SUBSCRIBE_TEXT))) + MASK + mask_bytes(SUBSCRIBE_TEXT, MASK)
BODY = b'{"name":"e","channel":"empty","data":"x"}'


class CountingTransport:
    """The transport methods the protocol objects call; writes are only counted."""

    def __init__(self) -> None:
        self.written = 0
        self.protocol: Any = None
        """The protocol receiving this connection's data (a handshake may hand it over)."""

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass


def timed(step: Callable[[Any], None], objects: list[Any]) -> float:
    """Microseconds per object of ``step``, the collector paused."""
    gc.disable()
    started = time.perf_counter()
    for each in objects:
        step(each)
    elapsed = time.perf_counter() - started
    gc.enable()
    return elapsed / len(objects) * 1e6


def measure(factory: Callable[[], Any], count: int, requests: list[bytes]) -> dict[str, float]:
    """One round: ``count`` connections handshake and subscribe; one takes the requests."""
    transports = [CountingTransport() for _ in range(count)]
    for transport in transports:
        transport.protocol = factory()

    def handshake(transport: CountingTransport) -> None:  # accepted, then the upgrade request
        conn = transport.protocol
        conn.connection_made(transport)
        conn.data_received(HANDSHAKE)

    figures = {
        "handshake": timed(handshake, transports),
        "subscribe": timed(lambda t: t.protocol.data_received(SUBSCRIBE), transports),
    }
    for transport in transports:
        transport.protocol.connection_lost(None)
    api = factory()
    api_transport = CountingTransport()
    api_transport.protocol = api
    api.connection_made(api_transport)
    figures["api request"] = timed(api.data_received, requests)
    return figures


async def run(count: int, rounds: int) -> None:
    loop = asyncio.get_running_loop()
    settings = load_settings(ENV)
    server = Server(settings)
    ctx = ConnectionContext(settings, server.node, [ApiRoutes(server.api, server.latency)], loop)
    hub = reference.Hub("bench", "bench-key", b"bench-secret")
    signer = Signer("bench", "bench-key", "bench-secret", "127.0.0.1", 8080)
    servers: dict[str, Callable[[], Any]] = {
        "overtone": lambda: HttpConnection(ctx),
        "reference": lambda: reference.Conn(hub),
    }
    best: dict[str, dict[str, float]] = {name: {} for name in servers}
    for _ in range(rounds):  # interleaved, so both see the same machine
        for name, factory in servers.items():
            requests = [signer.request(BODY) for _ in range(count)]
            for step, micros in measure(factory, count, requests).items():
                best[name][step] = min(best[name].get(step, micros), micros)
    print(f"{'µs per operation':20s} {'overtone':>9s} {'reference':>10s} {'ratio':>6s}")
    for step in best["overtone"]:
        ours, theirs = best["overtone"][step], best["reference"][step]
        print(f"{step:20s} {ours:9.1f} {theirs:10.1f} {ours / theirs:6.2f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20_000, help="connections and requests")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    try:
        import uvloop  # noqa: PLC0415

        uvloop.run(run(args.count, args.rounds))
    except ImportError:
        asyncio.run(run(args.count, args.rounds))


if __name__ == "__main__":
    main()
