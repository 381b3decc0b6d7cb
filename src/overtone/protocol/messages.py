"""Pusher messages: decoding client frames and encoding server frames as JSON bytes.

Decoding never raises on bad input: :func:`decode` returns ``None`` for anything that is
not a JSON object with a string ``event``. orjson is written in C and bounds nesting
depth itself, so a deeply nested frame cannot exhaust Python's recursion limit.
"""

from __future__ import annotations

from typing import Any

import orjson

from overtone.protocol.errors import PusherError

PONG = b'{"event":"pusher:pong","data":{}}'
PING = b'{"event":"pusher:ping","data":{}}'


def decode(text: str | bytes) -> dict[str, Any] | None:
    """Parse a client frame; ``None`` unless it is an object with a string ``event``."""
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(message, dict) or not isinstance(message.get("event"), str):
        return None
    return message


def encode(message: dict[str, Any]) -> bytes | None:
    """JSON bytes of ``message``; ``None`` when it cannot be encoded (e.g. nested too deep)."""
    try:
        return orjson.dumps(message)
    except orjson.JSONEncodeError:
        return None


def encode_text(value: object) -> str:
    """``value`` as a JSON string (``"null"`` when it cannot be encoded)."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return "null"


_ESTABLISHED = (
    b'{"event":"pusher:connection_established",'
    b'"data":"{\\"socket_id\\":\\"%s\\",\\"activity_timeout\\":%d}"}'
)


def connection_established(socket_id: str, activity_timeout: int) -> bytes:
    """The first frame of every accepted connection; ``data`` is a JSON string.

    A socket id of digits and one dot (every id :class:`~overtone.node.Node` makes) needs
    no escaping and is formatted into the frame directly, in half the time of encoding it.
    """
    if socket_id.replace(".", "", 1).isdigit():
        return _ESTABLISHED % (socket_id.encode(), activity_timeout)
    data = orjson.dumps({"socket_id": socket_id, "activity_timeout": activity_timeout})
    return orjson.dumps({"event": "pusher:connection_established", "data": data.decode()})


def error(err: PusherError) -> bytes:
    """A ``pusher:error`` frame."""
    return orjson.dumps(
        {"event": "pusher:error", "data": {"code": err.code, "message": err.message}}
    )


def subscription_succeeded(
    channel: str,
    data: str = "{}",
    position: dict[str, object] | None = None,
    recovered: bool | None = None,
) -> bytes:
    """``pusher_internal:subscription_succeeded``; ``data`` is already a JSON string.

    On channels with history the stream ``position`` is a top-level field, and so is
    ``recovered`` when the subscribe asked to recover (protocol.md §8).
    """
    message: dict[str, object] = {
        "event": "pusher_internal:subscription_succeeded",
        "channel": channel,
        "data": data,
    }
    if position is not None:
        message["position"] = position
    if recovered is not None:
        message["recovered"] = recovered
    return orjson.dumps(message)


def subscription_error(channel: object, message: str, status: int) -> bytes:
    """``pusher:subscription_error`` for ``channel`` (laravel-echo's ``.error()`` fires on it)."""
    error_type = "AuthError" if status in (401, 403) else "InvalidChannel"
    return orjson.dumps(
        {
            "event": "pusher:subscription_error",
            "channel": channel if isinstance(channel, str) else None,
            "data": {"type": error_type, "error": message, "status": status},
        }
    )


def event(name: str, channel: str, data: object, user_id: str | None = None) -> bytes | None:
    """A channel event as delivered to subscribers; ``None`` if ``data`` can't be encoded."""
    message: dict[str, Any] = {"event": name, "channel": channel, "data": data}
    if user_id is not None:
        message["user_id"] = user_id
    return encode(message)


def channel_event(name: str, channel: str, data: object) -> bytes:
    """An internal event (``pusher_internal:*``/``pusher:*``) on a channel."""
    return orjson.dumps({"event": name, "channel": channel, "data": data})


def plain_event(name: str, data: object) -> bytes:
    """An event that belongs to no channel (``pusher:signin_success``, watchlist events)."""
    return orjson.dumps({"event": name, "data": data})


def skipped(channel: str, offset: int) -> bytes:
    """``pusher_internal:skipped``: the event at ``offset`` is not replayed to this client
    (its previous connection was excluded from it). Clients ignore unknown internal events;
    the recovery add-on reads the offset so its position moves past it."""
    return b'{"event":"pusher_internal:skipped","channel":%s,"data":"{}","offset":%d}' % (
        orjson.dumps(channel),
        offset,
    )


def cache_miss(channel: str) -> bytes:
    """``pusher:cache_miss``: a cache channel had no event to replay."""
    return orjson.dumps({"event": "pusher:cache_miss", "channel": channel})
