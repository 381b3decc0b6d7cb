"""Small HTTP/1.1 response helpers (responses are written by hand: they are tiny and hot)."""

from __future__ import annotations

from http import HTTPStatus

import orjson

_REASONS = {s.value: s.phrase for s in HTTPStatus}


def response(
    status: int,
    body: bytes,
    *,
    keep_alive: bool = True,
    content_type: bytes = b"application/json",
    extra_headers: tuple[tuple[bytes, bytes], ...] = (),
) -> bytes:
    """A complete HTTP/1.1 response with ``Content-Length``."""
    head = [
        b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, "Unknown").encode()),
        b"Content-Type: " + content_type,
        b"Content-Length: %d" % len(body),
    ]
    head.extend(name + b": " + value for name, value in extra_headers)
    if not keep_alive:
        head.append(b"Connection: close")
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def error_response(
    status: int,
    message: str,
    *,
    keep_alive: bool = False,
    extra_headers: tuple[tuple[bytes, bytes], ...] = (),
) -> bytes:
    """A JSON ``{"error": message}`` response."""
    return response(
        status,
        orjson.dumps({"error": message}),
        keep_alive=keep_alive,
        extra_headers=extra_headers,
    )
