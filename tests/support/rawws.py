"""A deliberately crude WebSocket client that can send what real clients never would."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
from typing import Any

from support.servers import scaled


def frame(
    payload: bytes, opcode: int = 0x1, *, fin: bool = True, mask: bool = True, rsv: int = 0
) -> bytes:
    """One client frame, masked unless told otherwise."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    length = len(payload)
    mask_bit = 0x80 if mask else 0
    if length < 126:
        head = struct.pack("!BB", first, mask_bit | length)
    elif length < 65536:
        head = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, length)
    if not mask:
        return head + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


class RawClient:
    """A WebSocket connection over asyncio streams with hand-made frames."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(
        cls, port: int, path: str = "/app/test-key?protocol=7", headers: str = ""
    ) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\n{headers}\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), scaled(5))
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    def send_json(self, message: dict[str, Any]) -> None:
        self.writer.write(frame(json.dumps(message).encode()))

    async def recv(self, timeout: float = 5) -> tuple[int, bytes]:
        """The next server frame as ``(opcode, payload)``."""
        head = await asyncio.wait_for(self.reader.readexactly(2), scaled(timeout))
        assert head[1] & 0x80 == 0, "server frames must not be masked"
        length = head[1] & 0x7F
        if length == 126:
            length = struct.unpack("!H", await self.reader.readexactly(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", await self.reader.readexactly(8))[0]
        return head[0] & 0x0F, await self.reader.readexactly(length)

    async def recv_json(self, timeout: float = 5) -> dict[str, Any]:
        opcode, payload = await self.recv(timeout)
        assert opcode == 0x1, (opcode, payload)
        message: dict[str, Any] = json.loads(payload)
        return message

    async def recv_close(self, timeout: float = 5) -> int:
        """Skip data frames until a close frame; return its code."""
        while True:
            opcode, payload = await self.recv(timeout)
            if opcode == 0x8:
                return int(struct.unpack("!H", payload[:2])[0]) if payload else 1005

    async def established(self) -> str:
        message = await self.recv_json()
        assert message["event"] == "pusher:connection_established", message
        socket_id: str = json.loads(message["data"])["socket_id"]
        return socket_id

    def close(self) -> None:
        self.writer.close()
