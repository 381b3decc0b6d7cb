"""WebSocket opening handshake, server side (RFC 6455 §4.2), sans-I/O.

The HTTP request is parsed elsewhere (``httptools``); this module only validates the parsed
method, version and headers of an upgrade request and builds the ``101`` response by hand,
which is ~20x cheaper than a library handshake (see ARCHITECTURE.md, Transport choices).
No extension and no subprotocol is ever negotiated.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["HandshakeError", "accept_key", "check_host", "check_upgrade", "response_101"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_KEY = re.compile(rb"[A-Za-z0-9+/]{22}==")
"""Base64 of 16 bytes: 22 characters of the alphabet and two pads (24 in all)."""

_PROXY_HINT = (
    "if a proxy sits in front, forward the Upgrade and Connection headers "
    '(nginx: proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade")'
)


@dataclass(frozen=True, slots=True)
class HandshakeError:
    """Why an upgrade request is refused.

    ``status`` is the HTTP status to answer with, ``message`` a human-readable explanation that
    names the offending request line part or header (suitable as a ``text/plain`` body), and
    ``extra_headers`` are headers the response must carry (e.g. ``Sec-WebSocket-Version: 13``
    with a 426, ``Allow: GET`` with a 405).
    """

    status: int
    message: str
    extra_headers: tuple[tuple[bytes, bytes], ...] = ()


def accept_key(sec_websocket_key: bytes) -> bytes:
    """Return the ``Sec-WebSocket-Accept`` value: base64(sha1(key + RFC 6455 GUID))."""
    return binascii.b2a_base64(hashlib.sha1(sec_websocket_key + _GUID).digest(), newline=False)


def _has_token(value: bytes, token: bytes) -> bool:
    """Whether comma-separated header ``value`` holds ``token`` (lower-case), in any case."""
    lowered = value.lower()
    return lowered == token or token in [each.strip() for each in lowered.split(b",")]


def _show(value: bytes) -> str:
    """A short, printable rendering of a header value for error messages."""
    text = value.decode("latin-1")
    if len(text) > 40:
        text = text[:40] + "..."
    return repr(text)


def _http_version_ok(http_version: str) -> bool | None:
    """True if >= 1.1, False if older, None if unparsable (``"1.1"`` or ``"HTTP/1.1"``)."""
    if http_version == "1.1":  # nearly every request: no parsing
        return True
    version = http_version.removeprefix("HTTP/")
    major, dot, minor = version.partition(".")
    if not (major.isdecimal() and (not dot or minor.isdecimal())):
        return None
    return (int(major), int(minor or 0)) >= (1, 1)


def check_host(http_version: str, headers: Mapping[bytes, bytes]) -> HandshakeError | None:
    """Refuse an HTTP/1.1 request without a ``Host`` header (400), upgrade or not.

    RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request that lacks ``Host``;
    RFC 6455 §4.1 lists it among the headers of an opening handshake. HTTP/1.0 requests
    may omit it. An empty value is allowed (RFC 9112 §3.2, a target without an authority).
    """
    if b"host" in headers or _http_version_ok(http_version) is False:
        return None
    return HandshakeError(400, "missing 'Host' header; HTTP/1.1 requests must carry one")


def check_upgrade(
    method: bytes, http_version: str, headers: Mapping[bytes, bytes]
) -> HandshakeError | bytes:
    """Validate a WebSocket upgrade request per RFC 6455 §4.2.1.

    ``headers`` maps lower-cased header names to values (duplicates already joined with
    ``", "``).  Returns the ``Sec-WebSocket-Accept`` value to pass to ``response_101`` if the
    request is a valid upgrade, else a ``HandshakeError``.  Checks, in order: method ``GET``
    (405), HTTP/1.1 or later (505; 400 if unparsable), a ``Host`` header (400),
    ``Upgrade`` contains ``websocket`` (426), ``Connection`` contains ``upgrade`` (400),
    ``Sec-WebSocket-Version: 13`` (426), and a ``Sec-WebSocket-Key`` that base64-decodes to
    16 bytes (400).  ``Origin`` is checked by the app, not here.
    """
    key = headers.get(b"sec-websocket-key")
    # What browsers and SDKs send passes in one expression (this runs on every handshake);
    # anything else takes the checks below, which name what is wrong.
    if (
        key is not None
        and method == b"GET"
        and http_version == "1.1"
        and b"host" in headers
        and headers.get(b"sec-websocket-version") == b"13"
        and _has_token(headers.get(b"upgrade", b""), b"websocket")
        and _has_token(headers.get(b"connection", b""), b"upgrade")
        and _KEY.fullmatch(key)
    ):
        return accept_key(key)
    if method != b"GET":
        return HandshakeError(
            405,
            f"method {_show(method)} not allowed; a WebSocket upgrade must be a GET request",
            ((b"Allow", b"GET"),),
        )
    version_ok = _http_version_ok(http_version)
    if version_ok is None:
        return HandshakeError(400, f"malformed HTTP version {http_version[:20]!r}")
    if not version_ok:
        return HandshakeError(
            505,
            f"HTTP/{http_version.removeprefix('HTTP/')[:20]} cannot upgrade to WebSocket; "
            "HTTP/1.1 is required",
        )
    if b"host" not in headers:
        missing_host = check_host(http_version, headers)
        if missing_host is not None:
            return missing_host

    upgrade = headers.get(b"upgrade")
    if upgrade is None:
        return HandshakeError(
            426,
            f"missing 'Upgrade: websocket' header; {_PROXY_HINT}",
            ((b"Upgrade", b"websocket"),),
        )
    if not _has_token(upgrade, b"websocket"):
        return HandshakeError(
            426,
            f"'Upgrade' header is {_show(upgrade)}, expected 'websocket'; {_PROXY_HINT}",
            ((b"Upgrade", b"websocket"),),
        )

    connection = headers.get(b"connection")
    if connection is None:
        return HandshakeError(400, f"missing 'Connection: Upgrade' header; {_PROXY_HINT}")
    if not _has_token(connection, b"upgrade"):
        return HandshakeError(
            400,
            f"'Connection' header is {_show(connection)}, expected it to contain 'Upgrade'; "
            f"{_PROXY_HINT}",
        )

    version = headers.get(b"sec-websocket-version")
    if version is None or version.strip() != b"13":
        found = "missing" if version is None else f"is {_show(version)}"
        return HandshakeError(
            426,
            f"'Sec-WebSocket-Version' header {found}; only version 13 is supported",
            ((b"Sec-WebSocket-Version", b"13"),),
        )

    if key is None:
        return HandshakeError(400, "missing 'Sec-WebSocket-Key' header")
    key = key.strip()
    if not _KEY.fullmatch(key):
        return HandshakeError(
            400,
            f"'Sec-WebSocket-Key' header is {_show(key)}, expected base64 of 16 random bytes",
        )
    return accept_key(key)


def response_101(accept: bytes) -> bytes:
    """Return the complete ``101 Switching Protocols`` response for ``accept``.

    ``accept`` is the value returned by ``check_upgrade``.  The response carries ``Upgrade``,
    ``Connection`` and ``Sec-WebSocket-Accept`` only (no extensions, no subprotocol) and ends
    with the blank line, so WebSocket frames may follow immediately.
    """
    return (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
