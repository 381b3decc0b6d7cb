"""pusher-js's HTTP fallback spoken by hand over raw sockets: receive requests (streaming,
polling) and sends, one session path per client, as protocol.md §9 describes them."""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

from support.servers import scaled

Head = dict[str, str]


async def request(
    port: int, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, Head, asyncio.StreamReader, asyncio.StreamWriter]:
    """Send one request on a new connection; its status, headers, and the open stream."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), scaled(5))
    status_line, *header_lines = raw.decode("latin-1").split("\r\n")
    head = {}
    for line in header_lines:
        if ":" in line:
            name, _, value = line.partition(":")
            head[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), head, reader, writer


async def read_body(reader: asyncio.StreamReader, head: Head) -> bytes:
    """The body of a response with ``Content-Length``."""
    length = int(head.get("content-length", "0"))
    return await asyncio.wait_for(reader.readexactly(length), scaled(5)) if length else b""


class ChunkedLines:
    """The frame lines of a streaming (chunked) response, as they arrive."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.buffer = ""
        self.ended = False

    async def line(self, timeout: float = 5.0) -> str:
        """The next frame line; ``""`` once the response has ended."""
        while "\n" not in self.buffer:
            if self.ended:
                return ""
            await asyncio.wait_for(self._chunk(), scaled(timeout))
        line, _, self.buffer = self.buffer.partition("\n")
        return line

    async def _chunk(self) -> None:
        size_line = await self.reader.readline()
        if not size_line:
            self.ended = True
            return
        size = int(size_line.strip(), 16)
        data = await self.reader.readexactly(size + 2)
        if size == 0:
            self.ended = True
        self.buffer += data[:size].decode()

    def close(self) -> None:
        self.writer.close()


def messages(line: str) -> list[dict[str, Any]]:
    """The Pusher messages of an ``a[...]`` line."""
    assert line.startswith("a["), line
    return [json.loads(item) for item in json.loads(line[1:])]


class Client:
    """One pusher-js fallback session: its path, and requests on it."""

    def __init__(self, port: int, key: str = "test-key", prefix: str = "/pusher") -> None:
        self.port = port
        self.base = f"{prefix}/app/{key}/{secrets.randbelow(1000)}/{secrets.token_hex(4)}"
        self.query = "?protocol=7&client=js&version=8.4.0"
        self.sent = 0

    def target(self, kind: str) -> str:
        self.sent += 1
        return f"{self.base}/{kind}{self.query}&t=1700000000000&n={self.sent}"

    async def poll(self, headers: dict[str, str] | None = None) -> tuple[int, Head, str]:
        """One ``xhr`` receive request: status, headers and the body's text."""
        status, head, reader, writer = await request(
            self.port, "POST", self.target("xhr"), headers=headers
        )
        try:
            body = await read_body(reader, head)
        finally:
            writer.close()
        return status, head, body.decode()

    async def stream(self, headers: dict[str, str] | None = None) -> tuple[int, Head, ChunkedLines]:
        """One ``xhr_streaming`` receive request, left open."""
        status, head, reader, writer = await request(
            self.port, "POST", self.target("xhr_streaming"), headers=headers
        )
        return status, head, ChunkedLines(reader, writer)

    async def send(self, *payloads: Any, raw: bytes | None = None) -> tuple[int, Head, bytes]:
        """One ``xhr_send``: each payload as a Pusher message string (or ``raw`` as the body)."""
        body = raw if raw is not None else json.dumps([json.dumps(p) for p in payloads]).encode()
        status, head, reader, writer = await request(
            self.port, "POST", self.target("xhr_send"), body
        )
        try:
            answer = await read_body(reader, head)
        finally:
            writer.close()
        return status, head, answer
