"""Pusher error and close codes, each with its wire message, in one table.

A :class:`PusherError` is what a peer sees: the code decides the reconnect policy a
client applies (4000-4099 never reconnect, 4100-4199 back off, 4200-4299 reconnect
at once, 4300-4399 rate limits) so the same code is used for the ``pusher:error``
event and for the WebSocket close frame that may follow it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ErrorCode(IntEnum):
    """Pusher protocol error codes (protocol.md §1)."""

    SSL_ONLY = 4000
    APP_NOT_FOUND = 4001
    APP_DISABLED = 4003
    OVER_QUOTA = 4004
    PATH_NOT_FOUND = 4005
    INVALID_VERSION_FORMAT = 4006
    UNSUPPORTED_PROTOCOL = 4007
    NO_PROTOCOL = 4008
    UNAUTHORIZED = 4009
    OVER_CAPACITY = 4100
    RECONNECT = 4200
    PONG_TIMEOUT = 4201
    INACTIVITY = 4202
    RATE_LIMITED = 4301


@dataclass(frozen=True, slots=True)
class PusherError:
    """An error as sent to a client: ``{"code": code, "message": message}``."""

    code: int | None
    message: str


INVALID_MESSAGE = PusherError(ErrorCode.RECONNECT, "Invalid message format")
SERVER_SHUTTING_DOWN = PusherError(ErrorCode.RECONNECT, "Server is restarting, reconnect")
PONG_NOT_RECEIVED = PusherError(ErrorCode.PONG_TIMEOUT, "Pong reply not received in time")
RATE_LIMITED = PusherError(ErrorCode.RATE_LIMITED, "Client event rejected: rate limit exceeded")
OVER_QUOTA = PusherError(ErrorCode.OVER_QUOTA, "Application is over its connection quota")
APP_DISABLED = PusherError(ErrorCode.APP_DISABLED, "Application is disabled")
NO_PROTOCOL = PusherError(ErrorCode.NO_PROTOCOL, "No protocol version supplied")
BAD_ORIGIN = PusherError(ErrorCode.UNAUTHORIZED, "Origin not allowed for this application")
TERMINATED = PusherError(ErrorCode.UNAUTHORIZED, "Connection terminated by the server")
NOT_AUTHORIZED_IN_TIME = PusherError(
    ErrorCode.UNAUTHORIZED, "Connection not authorized within timeout"
)
SLOW_CONSUMER = PusherError(ErrorCode.OVER_CAPACITY, "Client is not reading fast enough")
OVER_CAPACITY = PusherError(ErrorCode.OVER_CAPACITY, "Server is over capacity, try again later")


def app_not_found(key: str) -> PusherError:
    """The error for a connection to an unknown app key."""
    return PusherError(ErrorCode.APP_NOT_FOUND, f"Application does not exist: {key[:64]!r}")


CLIENT_EVENTS_DISABLED = PusherError(None, "Client events are disabled for this application")
CLIENT_EVENT_WRONG_CHANNEL = PusherError(
    None, "Client events are only accepted on private and presence (not encrypted) channels"
)
CLIENT_EVENT_NOT_SUBSCRIBED = PusherError(
    None, "Client event rejected: subscribe to the channel before sending client events"
)


def reserved_event(event: str) -> PusherError:
    """The error for a client that sends an event only the server may send."""
    return PusherError(None, f"Event {event[:64]!r} is reserved for the server")
