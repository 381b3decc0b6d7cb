"""Checks on a WebSocket connection request before an app accepts it (protocol.md §1)."""

from __future__ import annotations

from overtone.protocol.errors import ErrorCode, PusherError

MIN_PROTOCOL = 5
MAX_PROTOCOL = 7


def protocol_error(protocol: str | None) -> PusherError | None:
    """The error for the ``protocol`` query parameter, or ``None`` when it is supported."""
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
