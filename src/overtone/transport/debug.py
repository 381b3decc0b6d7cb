"""``--debug``: log every frame a connection sends."""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger("overtone.frames")


def frame_payload(frame: bytes) -> bytes:
    """The payload of an unmasked server frame."""
    length = frame[1] & 0x7F
    offset = 2 if length < 126 else 4 if length == 126 else 10
    return frame[offset:]


def debug_writer(write: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """Wrap a transport ``write`` so that each outgoing frame is logged."""

    def logged(frame: bytes) -> None:
        log.debug("-> %s", frame_payload(frame)[:2000].decode("utf-8", "replace"))
        write(frame)

    return logged
