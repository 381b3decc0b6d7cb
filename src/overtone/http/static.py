"""``GET {prefix}/overtone/recovery.js``: the client add-on of protocol.md §8, unsigned.

The file ships inside the package (``overtone/static/recovery.js``); it is read once and
served from memory with an ETag and an hour of public caching.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources

import orjson

RECOVERY_JS_PATH = "/overtone/recovery.js"
JAVASCRIPT = b"application/javascript; charset=utf-8"
CACHE_CONTROL = b"public, max-age=3600"

Headers = tuple[tuple[bytes, bytes], ...]


@cache
def _recovery_js() -> tuple[bytes, bytes]:
    """The file's bytes and its ETag (a quoted digest of the bytes)."""
    body = resources.files("overtone").joinpath("static", "recovery.js").read_bytes()
    etag = b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'
    return body, etag


def recovery_js(method: str) -> tuple[int, bytes, bytes, Headers]:
    """``(status, body, content type, extra headers)`` answering ``method`` on the file."""
    if method not in ("GET", "HEAD"):
        return 405, orjson.dumps({"error": "Use GET"}), b"application/json", ()
    body, etag = _recovery_js()
    return 200, body, JAVASCRIPT, ((b"Cache-Control", CACHE_CONTROL), (b"ETag", etag))
