"""One client connection as the core sees it: identity, subscriptions, liveness, limits.

The transport creates a session with two callables, ``write`` (send one or more complete,
unmasked WebSocket frames written together; a transport that is not a WebSocket sends their
payloads) and ``close`` (send a close frame with a code, then close);
the core never touches a socket. The transport may swap ``write`` at any time, e.g. for a
guarded variant while the peer is slow to read.
"""

from __future__ import annotations

from collections.abc import Callable

WriteFrame = Callable[[bytes], None]
CloseWith = Callable[[int, str], None]


class Session:
    """State of one WebSocket connection to one app."""

    __slots__ = (
        "authorized",
        "channels",
        "close",
        "closed",
        "last_seen",
        "ping_sent",
        "rate_count",
        "rate_window",
        "socket_id",
        "user_id",
        "watchlist",
        "write",
    )

    def __init__(self, socket_id: str, write: WriteFrame, close: CloseWith, now: float) -> None:
        self.socket_id = socket_id
        self.write = write
        self.close = close
        self.channels: list[str] = []
        """Names of the channels it receives, in order. Membership is checked on the
        channel's subscribers (a dict); a list is 130 bytes smaller than a set here."""
        self.user_id: str | None = None
        self.watchlist: tuple[str, ...] = ()
        self.last_seen = now
        self.ping_sent: float | None = None
        self.rate_window = now
        self.rate_count = 0
        self.closed = False
        self.authorized = True
        """Whether it counts as an authorized connection; ``False`` until it signs in or
        makes a signed subscription, when the app requires that (authorized connections)."""

    def touch(self, now: float) -> None:
        """Record activity: any frame from the peer answers an outstanding ping."""
        self.last_seen = now
        self.ping_sent = None

    def allow_client_event(self, max_attempts: int, window: float, now: float) -> bool:
        """Fixed-window rate limit: at most ``max_attempts`` per ``window`` seconds."""
        if now - self.rate_window >= window:
            self.rate_window = now
            self.rate_count = 0
        self.rate_count += 1
        return self.rate_count <= max_attempts

    def __repr__(self) -> str:
        return f"<Session {self.socket_id} user={self.user_id!r} channels={len(self.channels)}>"
