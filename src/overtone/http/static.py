"""Files shipped inside the package and served as they are, with an ETag.

``GET {prefix}/overtone/recovery.js`` is the client add-on of protocol.md §8, unsigned,
with an hour of public caching. The dashboard's page and assets
(``overtone/static/dashboard/``) use the same reader. A file is read once and served from
memory.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources

import orjson

RECOVERY_JS_PATH = "/overtone/recovery.js"
JAVASCRIPT = b"application/javascript; charset=utf-8"
CACHE_CONTROL = b"public, max-age=3600"
CONTENT_TYPES = {
    "js": JAVASCRIPT,
    "css": b"text/css; charset=utf-8",
    "html": b"text/html; charset=utf-8",
    "svg": b"image/svg+xml",
    "png": b"image/png",
}

Headers = tuple[tuple[bytes, bytes], ...]


@cache
def packaged(*parts: str) -> tuple[bytes, bytes] | None:
    """The bytes and ETag (a quoted digest) of ``overtone/static/<parts>``, or ``None``."""
    path = resources.files("overtone").joinpath("static", *parts)
    if not path.is_file():
        return None
    body = path.read_bytes()
    return body, b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'


def content_type(name: str) -> bytes:
    """The ``Content-Type`` of a packaged file, by its suffix."""
    return CONTENT_TYPES.get(name.rpartition(".")[2], b"application/octet-stream")


def recovery_js(method: str) -> tuple[int, bytes, bytes, Headers]:
    """``(status, body, content type, extra headers)`` answering ``method`` on the file."""
    if method not in ("GET", "HEAD"):
        return 405, orjson.dumps({"error": "Use GET"}), b"application/json", ()
    found = packaged("recovery.js")
    assert found is not None, "overtone/static/recovery.js is missing from the package"
    body, etag = found
    return 200, body, JAVASCRIPT, ((b"Cache-Control", CACHE_CONTROL), (b"ETag", etag))
