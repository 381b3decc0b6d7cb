"""An app's credentials and what they sign: HTTP API URLs (Pusher auth_version 1.0) and
channel authorizations."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Creds:
    app_id: str
    key: str
    secret: str


BENCH_APP = Creds("bench", "bench-key", "bench-secret")


def sign(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def signed_url(
    creds: Creds, port: int, path: str, params: dict[str, str] | None = None, host: str = ""
) -> str:
    """A signed ``GET`` URL (Pusher HTTP API, auth_version 1.0)."""
    query = {
        **(params or {}),
        "auth_key": creds.key,
        "auth_timestamp": str(int(time.time())),
        "auth_version": "1.0",
    }
    canonical = "&".join(f"{k}={v}" for k, v in sorted(query.items()))
    signature = sign(creds.secret, f"GET\n{path}\n{canonical}")
    return f"http://{host or '127.0.0.1'}:{port}{path}?{canonical}&auth_signature={signature}"


def api_get(creds: Creds, port: int, path: str, params: dict[str, str] | None = None) -> Any:
    """A signed GET's JSON answer (blocking; raises on failure)."""
    with urllib.request.urlopen(signed_url(creds, port, path, params), timeout=5) as answer:
        return json.loads(answer.read())


def channel_auth(creds: Creds, socket_id: str, channel: str, channel_data: str = "") -> str:
    message = f"{socket_id}:{channel}" + (f":{channel_data}" if channel_data else "")
    return f"{creds.key}:{sign(creds.secret, message)}"
