"""``--debug``: log every frame a connection sends."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from overtone.protocol.frames import OP_CLOSE

log = logging.getLogger("overtone.frames")


def frames(data: bytes) -> Iterator[tuple[int, bytes]]:
    """``(opcode, payload)`` of the unmasked server frames written together in ``data``."""
    start = 0
    while start + 2 <= len(data):
        length = data[start + 1] & 0x7F
        header = 2
        if length == 126:
            length, header = int.from_bytes(data[start + 2 : start + 4], "big"), 4
        elif length == 127:
            length, header = int.from_bytes(data[start + 2 : start + 10], "big"), 10
        yield data[start] & 0x0F, data[start + header : start + header + length]
        start += header + length


def payloads(data: bytes) -> Iterator[bytes]:
    """The payloads of the unmasked server frames written together in ``data``."""
    return (payload for _, payload in frames(data))


def debug_writer(write: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """Wrap a transport ``write`` so that each outgoing frame is logged (a replay writes
    several frames at once: each is logged; a close frame as its code and reason)."""

    def logged(data: bytes) -> None:
        for opcode, payload in frames(data):
            if opcode == OP_CLOSE:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                log.debug("-> close %s %s", code, payload[2:].decode("utf-8", "replace"))
            else:
                log.debug("-> %s", payload[:2000].decode("utf-8", "replace"))
        write(data)

    return logged
