"""pusher-js's HTTP fallback sessions as benchmark connections, and the fallback benchmark's
load client.

:class:`StreamConn` is an ``xhr_streaming`` session and :class:`PollConn` an ``xhr_polling``
one. Both are :class:`~benchmarks.wsclient.WSConn` subclasses: they update the same
:class:`~benchmarks.wsclient.Stats` (events counted, latency stamps, subscriptions), so the
phases of :mod:`benchmarks.phases` (fan-out, latency) measure them as they measure WebSockets.
A session sends its messages (``pusher:subscribe``, ``pusher:pong``) with ``xhr_send`` on a
keep-alive connection of its own.

    python -m benchmarks.fallback_client --port P --transport ws|xhr_streaming --connections N
    python -m benchmarks.fallback_client --port P --transport xhr_polling --connections 100

Prints one JSON object (the last stdout line): ``connect``, ``rss``, ``fanout`` and
``latency`` phases, as ``benchmarks.loadclient`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import secrets
import sys
import time
from typing import Any

import orjson

from benchmarks.loadclient import log, loop_name, parse_common, phase
from benchmarks.phases import Ctx, fanout, finish, latency, open_conns
from benchmarks.procstat import idle_rss, rss_kb
from benchmarks.wsclient import PONG, HttpConn, Stats, WSConn

QUERY = "?protocol=7&client=js&version=8.4.0"


class StreamConn(WSConn):
    """One ``xhr_streaming`` session: a chunked response read line by line."""

    __slots__ = ("base", "chunk", "head", "host_port", "lines", "sender")

    def __init__(self, stats: Stats, host: str, port: int, key: str, channel: str) -> None:
        super().__init__(stats, host, port, key, channel)
        self.host_port = f"{host}:{port}"
        self.base = f"/pusher/app/{key}/{secrets.randbelow(1000)}/{secrets.token_hex(4)}"
        self.request = self.receive_request("xhr_streaming")
        self.head = True
        self.chunk = b""
        """Undecoded chunked transfer bytes."""
        self.lines = b""
        """Decoded response text not yet ending in a newline."""
        self.sender: HttpConn | None = None

    def receive_request(self, kind: str) -> bytes:
        return (
            f"POST {self.base}/{kind}{QUERY} HTTP/1.1\r\nHost: {self.host_port}\r\n"
            "Content-Type: application/json\r\nContent-Length: 0\r\n\r\n"
        ).encode()

    def send(self, payload: bytes, opcode: int = 0x1) -> None:
        """Send one Pusher message with ``xhr_send`` (on this session's own connection)."""
        body = orjson.dumps([payload.decode()])
        request = (
            f"POST {self.base}/xhr_send{QUERY} HTTP/1.1\r\nHost: {self.host_port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        if self.sender is None or self.sender.lost:
            host, port = self.host_port.rsplit(":", 1)
            loop = asyncio.get_running_loop()
            task = loop.create_task(loop.create_connection(HttpConn, host, int(port)))
            task.add_done_callback(lambda done: self._sent_on(done, request))
            return
        self.sender.send(request)

    def _sent_on(self, done: asyncio.Task[tuple[Any, HttpConn]], request: bytes) -> None:
        if done.cancelled() or done.exception() is not None:
            self.stats.note(f"xhr_send connection failed: {done.exception()!r}")
            return
        self.sender = done.result()[1]
        self.sender.send(request)

    def close(self) -> None:
        super().close()
        if self.sender is not None and self.sender.transport is not None:
            self.sender.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.head:
            data = self.chunk + data
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.chunk = data
                return
            if not data.startswith(b"HTTP/1.1 200"):
                self.closing = True
                self.refused(data.split(b"\r", 1)[0])
                if self.transport is not None:
                    self.transport.close()
                return
            self.head, self.chunk = False, b""
            data = data[end + 4 :]
        self.decoded(self.unchunk(data))

    def unchunk(self, data: bytes) -> bytes:
        """The response text carried by ``data`` (chunked transfer coding removed)."""
        buf, out, pos = self.chunk + data, [], 0
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(buf[pos:eol], 16)
            if len(buf) < eol + 2 + size + 2:
                break
            out.append(buf[eol + 2 : eol + 2 + size])
            pos = eol + 2 + size + 2
        self.chunk = buf[pos:]
        return b"".join(out)

    def decoded(self, text: bytes) -> None:
        """Frame lines: ``o``, ``a[...]``, ``h``, ``c[...]``."""
        text = self.lines + text
        cut = text.rfind(b"\n") + 1
        self.lines = text[cut:]
        st = self.stats
        now_ns = time.perf_counter_ns() if st.latency else 0
        for line in text[:cut].splitlines():
            if line.startswith(b"a["):
                self.messages(line, now_ns)
            elif line.startswith(b"c["):
                st.errors += 1
                st.note(f"closed by the server: {line[:80]!r}")
        st.last_rx = time.perf_counter()
        if st.counted >= st.goal:
            st.on_goal()

    def messages(self, line: bytes, now_ns: int) -> None:
        st = self.stats
        if b"pusher" not in line and not st.latency:  # the hot path: count, do not decode
            st.counted += line.count(b'{\\"event\\":\\"e\\"')
            return
        for item in orjson.loads(line[1:]):
            payload = item.encode()
            if b'"pusher' in payload:
                self.control(payload)
                continue
            st.counted += 1
            if st.latency:
                self.stamp(payload, now_ns)

    def control(self, payload: bytes) -> None:
        message = orjson.loads(payload)
        if message.get("event") == "pusher:ping":
            self.stats.pings += 1
            self.send(PONG)
            return
        super().control(payload)


class PollConn(StreamConn):
    """One ``xhr_polling`` session: each answer read whole, then the next poll sent."""

    __slots__ = ("length",)

    def __init__(self, stats: Stats, host: str, port: int, key: str, channel: str) -> None:
        super().__init__(stats, host, port, key, channel)
        self.request = self.receive_request("xhr")
        self.length = -1
        """The body length of the answer being read (-1: reading its head)."""

    def data_received(self, data: bytes) -> None:
        buf = self.chunk + data
        while True:
            if self.length < 0:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    break
                head = buf[:end].lower()
                if not head.startswith(b"http/1.1 200"):
                    self.refused(buf.split(b"\r", 1)[0])
                    self.closing = True
                    if self.transport is not None:
                        self.transport.close()
                    return
                at = head.find(b"content-length:")
                self.length = int(head[at + 15 : head.find(b"\r", at)] if at >= 0 else b"0")
                buf = buf[end + 4 :]
            if len(buf) < self.length:
                break
            body, buf, self.length = buf[: self.length], buf[self.length :], -1
            self.decoded(body)
            if self.transport is not None and not self.closing:
                self.transport.write(self.receive_request("xhr"))  # the next poll
        self.chunk = buf


FACTORIES = {"ws": WSConn, "xhr_streaming": StreamConn, "xhr_polling": PollConn}


async def run(ctx: Ctx, args: argparse.Namespace) -> dict[str, Any]:
    n, factory = args.connections, FACTORIES[args.transport]
    out: dict[str, Any] = {"transport": args.transport, "connections": n, "loop": loop_name()}
    log(f"{args.transport}: {n} sessions to {ctx.host}:{ctx.port}")
    rss_before = rss_kb(ctx.server_pid)
    try:
        await phase(out, "connect", open_conns(ctx, n, "bench", 100, factory))
        if not ctx.conns:
            return out
        gc.collect()
        gc.freeze()
        await asyncio.sleep(1.0)
        subscribed = len(ctx.conns)
        out["rss"] = idle_rss(ctx.server_pid, rss_before, subscribed)
        if args.fanout:
            events = max(10, args.deliveries // subscribed)
            await phase(out, "fanout", fanout(ctx, events, window=max(4, min(64, 40_000 // n))))
        latency_subs = min(100, subscribed)
        await phase(out, "latency", latency(ctx, latency_subs, rate=20, seconds=args.seconds))
    finally:
        await finish(ctx, out)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="overtone HTTP fallback benchmark client")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--server-pid", type=int, default=0)
    parser.add_argument("--transport", choices=tuple(FACTORIES), default="xhr_streaming")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--deliveries", type=int, default=500_000)
    parser.add_argument("--seconds", type=float, default=5.0, help="latency phase")
    parser.add_argument("--no-fanout", dest="fanout", action="store_false")
    args = parse_common(parser, argv)
    ctx = Ctx(
        args.host, args.port, args.app_id, args.key, args.secret, args.server_pid, args.timeout
    )
    try:
        import uvloop  # noqa: PLC0415

        result = uvloop.run(run(ctx, args))
    except ImportError:
        result = asyncio.run(run(ctx, args))
    result["nofile_limit"] = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    result["pid"] = os.getpid()
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
