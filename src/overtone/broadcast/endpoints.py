"""``POST /broadcasting/auth`` and ``/broadcasting/user-auth``, without a framework.

The framework modules (:mod:`.starlette`, :mod:`.django`, :mod:`.flask`) only read the
parameters and the user, call :func:`answer` or :func:`handle` and write the
:class:`AuthResponse`. Parameters come form-encoded (pusher-js) or as a JSON object.

Statuses: 200 with the JSON pusher-js expects; 400 malformed request (bad socket id or
channel name, public channel); 403 no user or not allowed; 413 body over 64 KiB; 503
realtime not configured (one warning a minute is logged). Error bodies are
``{"error": "..."}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl

from overtone.broadcast.channels import SOCKET_ID, ChannelRegistry
from overtone.broadcast.errors import AuthRequestError, NotConfigured

MAX_BODY = 65_536

Kind = Literal["channel", "user"]
"""Which request: channel authorization or user sign-in."""


@dataclass(frozen=True, slots=True)
class AuthResponse:
    """Status and JSON body of an authorization answer."""

    status: int
    body: dict[str, Any]

    def content(self) -> bytes:
        """The body as compact UTF-8 JSON."""
        return json.dumps(self.body, separators=(",", ":")).encode()


def is_json(content_type: str | None) -> bool:
    """Whether a request's content type is JSON (else it is read as a form)."""
    media = (content_type or "").split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def parse_params(content_type: str | None, body: bytes) -> dict[str, str]:
    """Request parameters from a form-encoded (pusher-js) or JSON body.

    Raises :class:`AuthRequestError` with 413 past :data:`MAX_BODY` and 400 when the body
    is not decodable; JSON values other than strings and numbers are left out.
    """
    if len(body) > MAX_BODY:
        raise AuthRequestError(413, f"body is larger than {MAX_BODY} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise AuthRequestError(400, "body is not UTF-8") from None
    if not is_json(content_type):
        return dict(parse_qsl(text, keep_blank_values=True))
    try:
        document = json.loads(text) if text.strip() else {}
    except ValueError:
        raise AuthRequestError(400, "body is not valid JSON") from None
    if not isinstance(document, dict):
        raise AuthRequestError(400, "JSON body must be an object")
    return {
        str(name): str(value)
        for name, value in document.items()
        if isinstance(value, str | int | float) and not isinstance(value, bool)
    }


def socket_id_from_headers(headers: Mapping[str, str]) -> str | None:
    """The ``X-Socket-ID`` that laravel-echo adds to the page's requests, when well-formed.

    Pass it as ``socket_id`` to ``trigger`` so the sender's own connection is left out
    (Laravel's ``broadcast(...)->toOthers()``).
    """
    value = headers.get("X-Socket-ID") or headers.get("x-socket-id")
    return value if value is not None and SOCKET_ID.fullmatch(value) else None


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise AuthRequestError(400, f"{name} is required")
    return value


def _error(status: int, message: str) -> AuthResponse:
    return AuthResponse(status, {"error": message})


def _answered(payload: dict[str, str] | None) -> AuthResponse:
    return _error(403, "Forbidden") if payload is None else AuthResponse(200, dict(payload))


def _off(registry: ChannelRegistry, error: NotConfigured) -> AuthResponse:
    registry.reporter.warn(error)
    return _error(503, "realtime is not configured")


def answer(
    registry: ChannelRegistry, kind: Kind, params: Mapping[str, str], user: Any
) -> AuthResponse:
    """Answer a ``kind`` request with already-parsed ``params`` for ``user``.

    ``"channel"`` reads ``socket_id`` and ``channel_name``; ``"user"`` reads ``socket_id``.
    """
    try:
        socket_id = _required(params, "socket_id")
        if kind == "user":
            return _answered(registry.authorize_user(socket_id, user))
        channel = _required(params, "channel_name")
        return _answered(registry.authorize(channel, socket_id, user))
    except AuthRequestError as bad:
        return _error(bad.status, bad.message)
    except NotConfigured as off:
        return _off(registry, off)


async def answer_async(
    registry: ChannelRegistry, kind: Kind, params: Mapping[str, str], user: Any
) -> AuthResponse:
    """As :func:`answer`, awaiting async callbacks and ``user_data``."""
    try:
        socket_id = _required(params, "socket_id")
        if kind == "user":
            return _answered(await registry.authorize_user_async(socket_id, user))
        channel = _required(params, "channel_name")
        return _answered(await registry.authorize_async(channel, socket_id, user))
    except AuthRequestError as bad:
        return _error(bad.status, bad.message)
    except NotConfigured as off:
        return _off(registry, off)


def handle(
    registry: ChannelRegistry, kind: Kind, content_type: str | None, body: bytes, user: Any
) -> AuthResponse:
    """Parse a raw ``body`` (form or JSON) and :func:`answer` it."""
    try:
        params = parse_params(content_type, body)
    except AuthRequestError as bad:
        return _error(bad.status, bad.message)
    return answer(registry, kind, params, user)


async def handle_async(
    registry: ChannelRegistry, kind: Kind, content_type: str | None, body: bytes, user: Any
) -> AuthResponse:
    """As :func:`handle`, awaiting async callbacks."""
    try:
        params = parse_params(content_type, body)
    except AuthRequestError as bad:
        return _error(bad.status, bad.message)
    return await answer_async(registry, kind, params, user)
