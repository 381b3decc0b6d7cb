"""``pusher:signin``: verifying the signature and reading ``user_data`` (protocol.md §4)."""

from __future__ import annotations

import orjson

from overtone.protocol.errors import ErrorCode, PusherError
from overtone.protocol.signatures import user_auth_ok

MAX_WATCHLIST = 100


def _refuse(reason: str) -> PusherError:
    return PusherError(ErrorCode.UNAUTHORIZED, f"Sign-in failed: {reason}")


def parse_signin(
    key: str, secret: str, socket_id: str, data: object
) -> PusherError | tuple[str, str, tuple[str, ...]]:
    """Return ``(user_id, user_data, watchlist)`` or the 4009 error to close with."""
    if not isinstance(data, dict):
        return _refuse("data must be an object with auth and user_data")
    user_data = data.get("user_data")
    if not isinstance(user_data, str):
        return _refuse("user_data must be a JSON string")
    if not user_auth_ok(key, secret, socket_id, user_data, data.get("auth")):
        return _refuse("invalid signature")
    try:
        parsed = orjson.loads(user_data)
    except orjson.JSONDecodeError:
        return _refuse("user_data is not valid JSON")
    if not isinstance(parsed, dict):
        return _refuse("user_data must be a JSON object")
    user_id = parsed.get("id")
    if isinstance(user_id, bool) or not isinstance(user_id, str | int) or user_id == "":
        return _refuse("user_data.id is required")
    watchlist = parsed.get("watchlist", [])
    if not isinstance(watchlist, list) or not all(isinstance(u, str | int) for u in watchlist):
        return _refuse("user_data.watchlist must be a list of user ids")
    if len(watchlist) > MAX_WATCHLIST:
        return _refuse(f"user_data.watchlist has more than {MAX_WATCHLIST} ids")
    return str(user_id), user_data, tuple(dict.fromkeys(str(u) for u in watchlist))
