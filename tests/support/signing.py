"""Signing HTTP API requests the way the Pusher server SDKs do."""

from __future__ import annotations

import hashlib
import time
from urllib.parse import urlencode

from overtone.protocol.signatures import request_signature
from support.servers import APP_KEY, APP_SECRET


def signed_target(
    method: str,
    path: str,
    body: bytes = b"",
    params: dict[str, str] | None = None,
    key: str = APP_KEY,
    secret: str = APP_SECRET,
    timestamp: int | None = None,
    sign_path: str | None = None,
) -> str:
    """``path?query`` with ``auth_*`` parameters and, for a body, ``body_md5``."""
    query = {
        "auth_key": key,
        "auth_timestamp": str(int(time.time()) if timestamp is None else timestamp),
        "auth_version": "1.0",
        **(params or {}),
    }
    if body:
        query["body_md5"] = hashlib.md5(body).hexdigest()
    query["auth_signature"] = request_signature(secret, method, sign_path or path, query.items())
    return f"{path}?{urlencode(query)}"
