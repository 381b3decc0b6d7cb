"""Small HTTP/1.1 response helpers (responses are written by hand: they are tiny and hot)."""

from __future__ import annotations

from http import HTTPStatus

import orjson

_STATUS_LINES = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus}


def response(
    status: int,
    body: bytes,
    *,
    keep_alive: bool = True,
    content_type: bytes = b"application/json",
    extra_headers: tuple[tuple[bytes, bytes], ...] = (),
) -> bytes:
    """A complete HTTP/1.1 response with ``Content-Length``."""
    status_line = _STATUS_LINES.get(status) or b"HTTP/1.1 %d Unknown\r\n" % status
    head = b"%sContent-Type: %s\r\nContent-Length: %d\r\n" % (
        status_line,
        content_type,
        len(body),
    )
    for name, value in extra_headers:
        head += name + b": " + value + b"\r\n"
    if not keep_alive:
        head += b"Connection: close\r\n"
    return head + b"\r\n" + body


def revalidated(
    status: int,
    body: bytes,
    headers: tuple[tuple[bytes, bytes], ...],
    if_none_match: bytes | None,
) -> tuple[int, bytes]:
    """``(304, b"")`` when the request's ``If-None-Match`` names the answer's ETag (or is
    ``*``), else the answer unchanged: a cached add-on is revalidated without its body."""
    if status != 200 or if_none_match is None:
        return status, body
    etag = next((value for name, value in headers if name.lower() == b"etag"), None)
    wanted = {tag.strip() for tag in if_none_match.split(b",")}
    if etag is not None and (etag in wanted or b"*" in wanted):
        return 304, b""
    return status, body


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
