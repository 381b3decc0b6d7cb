"""Checks on a WebSocket connection request before an app accepts it (protocol.md §1)."""

from __future__ import annotations

from urllib.parse import unquote_plus

from overtone.protocol.errors import ErrorCode, PusherError

MIN_PROTOCOL = 5
MAX_PROTOCOL = 7
_SUPPORTED = frozenset(str(version) for version in range(MIN_PROTOCOL, MAX_PROTOCOL + 1))


def protocol_error(protocol: str | None) -> PusherError | None:
    """The error for the ``protocol`` query parameter, or ``None`` when it is supported."""
    if protocol in _SUPPORTED:
        return None
    if protocol is None or protocol == "":
        return PusherError(ErrorCode.NO_PROTOCOL, "No protocol version supplied")
    if not protocol.isdigit():
        return PusherError(
            ErrorCode.INVALID_VERSION_FORMAT, f"Invalid version string format: {protocol[:32]!r}"
        )
    version = int(protocol)
    if not MIN_PROTOCOL <= version <= MAX_PROTOCOL:
        return PusherError(
            ErrorCode.UNSUPPORTED_PROTOCOL,
            f"Unsupported protocol version {version} (supported: {MIN_PROTOCOL}-{MAX_PROTOCOL})",
        )
    return None


def query_value(query: str, name: str) -> str | None:
    """The last value of parameter ``name`` in a URL query string (``None`` if absent).

    Same answer as ``parse_qs(query).get(name, [None])[-1]`` for the parameters a
    connection URL carries, at a fraction of its cost (it ran on every handshake).
    """
    found = None
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if "%" in key or "+" in key:
            key = unquote_plus(key)
        if key == name and value:  # blank values are skipped, as parse_qs does
            found = unquote_plus(value) if "%" in value or "+" in value else value
    return found
