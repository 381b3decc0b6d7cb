"""The live probe: through the public address exactly as a browser and the broadcaster.

1. WebSocket handshake to ``{url}/app/{key}`` (through the proxy, TLS verified);
2. ``pusher:connection_established``;
3. a private-channel subscription signed with the app secret;
4. a signed trigger to the broadcaster's address (``REVERB_SCHEME://REVERB_HOST:REVERB_PORT``);
5. the event arriving on the WebSocket, with the round-trip time;
6. (:func:`probe_fallback`) a session of pusher-js's HTTP fallback opened by polling
   ``{url}/pusher/app/{key}/.../xhr``, for networks that refuse WebSockets.

Each failure is matched to the known shapes (no ``Upgrade`` forwarded, HTML instead of
JSON, TLS errors, wrong key or secret, nothing listening) with a fix hint.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException

from overtone.doctor.report import Check, Status
from overtone.protocol.signatures import request_signature, sign

NGINX_UPGRADE = (
    "in the Nginx location for /app/: proxy_http_version 1.1; "
    'proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade";\n'
    "`overtone deploy nginx` prints a working server block"
)


@dataclass(frozen=True)
class Target:
    """What the probe needs: the public WebSocket URL, the API base URL, the app."""

    ws_url: str
    api_url: str
    app_id: str
    key: str
    secret: str
    verify_tls: bool = True
    timeout: float = 5.0


def _ws_base(url: str) -> str:
    parts = urlsplit(url)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def _tls(target: Target) -> ssl.SSLContext | None:
    if target.ws_url.startswith("wss") or target.api_url.startswith("https"):
        context = ssl.create_default_context()
        if not target.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context
    return None


async def probe(target: Target) -> list[Check]:
    """Run every step; later steps are skipped once one fails."""
    checks: list[Check] = []
    url = f"{_ws_base(target.ws_url)}/app/{target.key}?protocol=7&client=js&version=8.4.0"
    try:
        ws = await connect(
            url,
            ssl=_tls(target) if url.startswith("wss") else None,
            open_timeout=target.timeout,
            compression=None,
            proxy=None,
        )
    except Exception as exc:
        checks.append(_handshake_failure(url, exc))
        return _skip_rest(checks, 1)
    async with ws:
        checks.append(Check("WebSocket handshake", Status.OK, url.split("?", maxsplit=1)[0]))
        socket_id = await _established(ws, target, checks)
        if socket_id is None:
            return _skip_rest(checks, 2)
        channel = f"private-overtone-doctor-{secrets.token_hex(4)}"
        if not await _subscribe(ws, target, socket_id, channel, checks):
            return _skip_rest(checks, 3)
        started = time.perf_counter()
        if not await _trigger(target, channel, checks):
            return _skip_rest(checks, 4)
        await _delivery(ws, target, channel, started, checks)
    return checks


def _handshake_failure(url: str, exc: Exception) -> Check:
    name = "WebSocket handshake"
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        body = exc.response.body.decode("utf-8", "replace") if exc.response.body else ""
        content_type = exc.response.headers.get("Content-Type", "")
        if status == 426 and "upgrade" in body.lower():
            return Check(
                name, Status.FAIL, "the server never saw the Upgrade header (426)", NGINX_UPGRADE
            )
        if status == 400 and "connection" in body.lower():
            return Check(
                name, Status.FAIL, "the Connection: upgrade header was not forwarded", NGINX_UPGRADE
            )
        if "html" in content_type or body.lstrip().startswith("<"):
            return Check(
                name,
                Status.FAIL,
                f"HTTP {status} with an HTML page: this address is not proxied to overtone",
                "add the /app/ location to the proxy (`overtone deploy nginx`), or check "
                "the URL's path prefix (REVERB_SERVER_PATH)",
            )
        if status in (502, 503, 504):
            return Check(
                name,
                Status.FAIL,
                f"HTTP {status} from the proxy: it cannot reach overtone",
                "is `overtone start` running, and does the proxy's upstream match "
                "REVERB_SERVER_HOST/REVERB_SERVER_PORT?",
            )
        return Check(name, Status.FAIL, f"HTTP {status}: {body[:160]}", "check the URL and proxy")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return Check(
            name,
            Status.FAIL,
            f"TLS certificate rejected: {exc.verify_message}",
            "install a certificate valid for this host name (e.g. Let's Encrypt), with its "
            "full chain (ssl_certificate fullchain.pem)",
        )
    if isinstance(exc, ssl.SSLError):
        return Check(
            name,
            Status.FAIL,
            f"TLS failed: {exc.reason or exc}",
            "is TLS served on this port? wss:// needs a TLS listener (Nginx `listen 443 ssl`)",
        )
    if isinstance(exc, ConnectionRefusedError):
        return Check(name, Status.FAIL, "connection refused", "nothing listens on that port")
    if isinstance(exc, TimeoutError):
        return Check(name, Status.FAIL, "timed out", "a firewall or security group drops it")
    if isinstance(exc, WebSocketException | OSError):
        return Check(name, Status.FAIL, f"{type(exc).__name__}: {exc}", "check the URL")
    return Check(name, Status.FAIL, f"{type(exc).__name__}: {exc}")


async def _established(ws: ClientConnection, target: Target, checks: list[Check]) -> str | None:
    try:
        first = json.loads(await asyncio.wait_for(ws.recv(), target.timeout))
    except (TimeoutError, WebSocketException, ValueError) as exc:
        checks.append(Check("connection established", Status.FAIL, f"no greeting: {exc}"))
        return None
    if first.get("event") == "pusher:connection_established":
        socket_id = str(json.loads(first["data"])["socket_id"])
        checks.append(Check("connection established", Status.OK, f"socket {socket_id}"))
        return socket_id
    data = first.get("data") or {}
    code = data.get("code") if isinstance(data, dict) else None
    hint = (
        "REVERB_APP_KEY in this .env differs from the server's: use the same .env"
        if code == 4001
        else ""
    )
    message = data.get("message") if isinstance(data, dict) else data
    checks.append(Check("connection established", Status.FAIL, f"{code}: {message}", hint))
    return None


async def _subscribe(
    ws: ClientConnection, target: Target, socket_id: str, channel: str, checks: list[Check]
) -> bool:
    auth = f"{target.key}:{sign(target.secret, f'{socket_id}:{channel}')}"
    await ws.send(
        json.dumps({"event": "pusher:subscribe", "data": {"channel": channel, "auth": auth}})
    )
    try:
        reply = json.loads(await asyncio.wait_for(ws.recv(), target.timeout))
    except (TimeoutError, WebSocketException, ValueError) as exc:
        checks.append(Check("private channel", Status.FAIL, f"no answer: {exc}"))
        return False
    if reply.get("event") == "pusher_internal:subscription_succeeded":
        checks.append(Check("private channel", Status.OK, "signed subscription accepted"))
        return True
    checks.append(
        Check(
            "private channel",
            Status.FAIL,
            f"refused: {reply.get('data')}",
            "REVERB_APP_SECRET differs from the server's: use the same .env everywhere",
        )
    )
    return False


async def _trigger(target: Target, channel: str, checks: list[Check]) -> bool:
    name = "signed trigger"
    parts = urlsplit(target.api_url)
    path = f"{parts.path.rstrip('/')}/apps/{target.app_id}/events"
    body = json.dumps({"name": "doctor", "channel": channel, "data": "ping"}).encode()
    query = {
        "auth_key": target.key,
        "auth_timestamp": str(int(time.time())),
        "auth_version": "1.0",
        "body_md5": hashlib.md5(body).hexdigest(),
    }
    query["auth_signature"] = request_signature(target.secret, "POST", path, query.items())
    url = f"{parts.scheme}://{parts.netloc}{path}?{urlencode(query)}"
    try:
        async with httpx.AsyncClient(verify=_tls(target) or True, timeout=target.timeout) as http:
            answer = await http.post(
                url, content=body, headers={"Content-Type": "application/json"}
            )
    except httpx.HTTPError as exc:
        checks.append(
            Check(
                name,
                Status.FAIL,
                f"{target.api_url} unreachable: {exc}",
                "the broadcaster posts to REVERB_SCHEME://REVERB_HOST:REVERB_PORT; it must "
                "reach overtone's HTTP API there",
            )
        )
        return False
    content_type = answer.headers.get("content-type", "")
    if "json" not in content_type:
        checks.append(
            Check(
                name,
                Status.FAIL,
                f"HTTP {answer.status_code} with {content_type or 'no content type'} instead of "
                "JSON: the API request did not reach overtone",
                "proxy the /apps/ location to overtone as well (`overtone deploy nginx`)",
            )
        )
        return False
    if answer.status_code != 200:
        hint = {
            401: "REVERB_APP_SECRET differs, or the clocks differ by more than 10 minutes",
            404: "REVERB_APP_ID differs from the server's",
            413: "raise the proxy's client_max_body_size",
        }.get(answer.status_code, "")
        checks.append(Check(name, Status.FAIL, f"HTTP {answer.status_code}: {answer.text}", hint))
        return False
    checks.append(Check(name, Status.OK, f"POST {target.api_url}{path[len(parts.path) :]} -> 200"))
    return True


async def _delivery(
    ws: ClientConnection, target: Target, channel: str, started: float, checks: list[Check]
) -> None:
    deadline = time.perf_counter() + target.timeout
    while time.perf_counter() < deadline:
        try:
            message = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.perf_counter()))
        except (TimeoutError, WebSocketException, ValueError):
            break
        if message.get("event") == "doctor" and message.get("channel") == channel:
            rtt = (time.perf_counter() - started) * 1000
            checks.append(Check("delivery", Status.OK, f"event received, round trip {rtt:.1f} ms"))
            return
    checks.append(
        Check(
            "delivery",
            Status.FAIL,
            "the triggered event never arrived on the WebSocket",
            "the API and the WebSocket reach different servers: with several nodes enable "
            "REVERB_SCALING_ENABLED with one Redis for all",
        )
    )


FALLBACK = "HTTP fallback"
NGINX_FALLBACK = (
    "route {path}/pusher/app/ to overtone with proxy_buffering off (`overtone deploy nginx` "
    "writes that location); pages whose network refuses WebSockets need it"
)


async def probe_fallback(target: Target, fallback_path: str = "/pusher") -> Check:
    """Open a polling session of pusher-js's HTTP fallback through the public address.

    A warning, not a failure, when it does not answer: WebSocket clients work without it.
    """
    parts = urlsplit(target.ws_url)
    scheme = {"wss": "https", "ws": "http"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/")
    session = f"{secrets.randbelow(1000)}/{secrets.token_hex(4)}"
    url = f"{scheme}://{parts.netloc}{path}{fallback_path}/app/{target.key}/{session}/xhr"
    hint = NGINX_FALLBACK.format(path=path)
    try:
        async with httpx.AsyncClient(verify=_tls(target) or False, timeout=target.timeout) as http:
            answer = await http.post(
                url,
                params={"protocol": "7", "client": "js", "version": "8.4.0"},
                headers={"Content-Type": "application/json"},
            )
    except httpx.HTTPError as exc:
        return Check(FALLBACK, Status.WARN, f"{type(exc).__name__}: {exc}", hint)
    shown = url.rsplit("/", 3)[0] + "/…/xhr"  # the session path stays out of reports
    if answer.status_code != 200:
        return Check(FALLBACK, Status.WARN, f"HTTP {answer.status_code} from {shown}", hint)
    lines = answer.text.split("\n")
    if lines[0] != "o" or len(lines) < 2 or "connection_established" not in lines[1]:
        refused = next((line for line in lines if line.startswith("c[")), answer.text[:120])
        return Check(FALLBACK, Status.WARN, f"{shown} answered {refused!r}", hint)
    return Check(FALLBACK, Status.OK, f"a polling session opened at {shown}")


def _skip_rest(checks: list[Check], done: int) -> list[Check]:
    names = [
        "WebSocket handshake",
        "connection established",
        "private channel",
        "signed trigger",
        "delivery",
    ]
    checks.extend(Check(name, Status.SKIP) for name in names[done:])
    return checks
