"""One plain HTTP/1.1 request over a fresh connection, for transport tests."""

from __future__ import annotations

import asyncio

from support.servers import scaled


async def request(
    port: int, line: bytes, headers: bytes = b"", body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    """Send ``line`` (request line, optionally followed by header lines), ``Host``,
    ``Connection: close``, ``headers`` and ``body``; the status, headers (names lower-cased)
    and body of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    extra = headers + b"\r\n" if headers else b""
    writer.write(
        line
        + b"\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        + extra
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )
    try:
        answer = await asyncio.wait_for(reader.read(-1), scaled(5))
    finally:
        writer.close()
    raw_head, _, content = answer.partition(b"\r\n\r\n")
    status_line, *lines = raw_head.decode("latin-1").split("\r\n")
    found = {}
    for each in lines:
        name, _, value = each.partition(":")
        found[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), found, content
