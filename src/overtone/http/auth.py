"""Verifying a signed HTTP API request (protocol.md §5)."""

from __future__ import annotations

from overtone.apps import App
from overtone.protocol.signatures import md5_hex, request_signature, signature_matches

EMPTY_MD5 = md5_hex(b"")


def request_auth_error(
    app: App,
    method: str,
    paths: tuple[str, ...],
    params: list[tuple[str, str]],
    query: dict[str, str],
    body: bytes,
    wall_time: float,
    window: int,
) -> str | None:
    """Why the request's signature is not acceptable, or ``None`` when it is.

    ``paths`` are the paths the signature may cover (with and without a server prefix);
    ``query`` is ``dict(params)`` (the last value of each name).
    """
    if query.get("auth_key") != app.key:
        return "auth_key does not match the application key"
    timestamp = query.get("auth_timestamp", "")
    try:
        skew = abs(wall_time - int(timestamp))
    except ValueError:
        return "auth_timestamp is missing or not an integer"
    if skew > window:
        return (
            f"auth_timestamp is {int(skew)} s away from the server time "
            f"(allowed: {window} s); check the clocks"
        )
    if query.get("auth_version", "1.0") != "1.0":
        return "auth_version must be 1.0"
    given_md5 = query.get("body_md5")
    if body:
        if given_md5 is None:
            return "body_md5 is required for a request with a body"
        if not signature_matches(md5_hex(body), given_md5):
            return "body_md5 does not match the body"
    elif given_md5 is not None and given_md5 != EMPTY_MD5:
        return "body_md5 does not match the (empty) body"
    given = query.get("auth_signature")
    if given is None:
        return "auth_signature is missing"
    for path in paths:
        if signature_matches(request_signature(app.secret, method, path, params), given):
            return None
    return "Invalid signature: check the app secret and how the request is signed"
