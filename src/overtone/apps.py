"""Applications: credentials and per-app options, and the registry that finds them.

An app is immutable once loaded. Apps come from the ``REVERB_APP_*`` variables (one app)
or from an apps file (TOML or JSON, several apps); see :mod:`overtone.config`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from overtone.channels.history import HistoryLimits

WEBHOOK_EVENTS = frozenset(
    {
        "channel_occupied",
        "channel_vacated",
        "member_added",
        "member_removed",
        "client_event",
        "cache_miss",
        "subscription_count",
    }
)
"""The webhook events of protocol.md §6."""

OPT_IN_WEBHOOKS = frozenset({"subscription_count"})
"""Webhook events sent only when the app lists them: a busy channel's count changes often."""


class ClientEventsFrom(StrEnum):
    """Who may send client events (Reverb's ``accept_client_events_from``)."""

    MEMBERS = "members"  # only connections subscribed to the channel
    ALL = "all"  # any connection of the app
    NONE = "none"  # client events are refused


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Per-connection client-event limit: ``max_attempts`` per ``decay_seconds`` window."""

    enabled: bool = True
    max_attempts: int = 10
    decay_seconds: float = 1.0
    terminate: bool = False


@dataclass(frozen=True, slots=True)
class App:
    """One Pusher application and its limits."""

    id: str
    key: str
    secret: str
    enabled: bool = True
    allowed_origins: tuple[str, ...] = ("*",)
    ping_interval: int = 60
    activity_timeout: int = 30
    max_connections: int | None = None
    max_message_size: int = 10_000
    client_events_from: ClientEventsFrom = ClientEventsFrom.MEMBERS
    rate_limit: RateLimit = field(default_factory=RateLimit)
    max_presence_members: int = 100
    max_presence_user_info: int = 1_000
    max_presence_user_id: int = 128
    cache_ttl: float = 1_800.0
    max_channels_per_trigger: int = 100
    max_batch_size: int = 10
    history: HistoryLimits = field(default_factory=HistoryLimits)
    """Per-channel event history and recovery (protocol.md §8)."""
    webhook_urls: tuple[str, ...] = ()
    webhook_events: frozenset[str] | None = None
    """Webhook event names to send (``None``: all of :data:`WEBHOOK_EVENTS` but the
    :data:`OPT_IN_WEBHOOKS`)."""
    subscription_count: bool = False
    """Send ``pusher_internal:subscription_count`` to the subscribers of public, private,
    encrypted and cache channels when their count changes (hosted Pusher's subscription
    counting)."""
    authorized_connections: bool = False
    """Close, with 4009, connections that neither sign in nor subscribe to a private or
    presence channel within :attr:`authorization_timeout`; only authorized connections
    count against :attr:`max_connections`."""
    authorization_timeout: float = 30.0
    """Seconds a connection has to become authorized, when that is required."""

    @property
    def ping_after(self) -> int:
        """Seconds of client silence after which the server sends ``pusher:ping``.

        The activity timeout (what clients are told), or Reverb's ``ping_interval`` when
        that is shorter: it bounds how long a dead connection stays counted.
        """
        return min(self.activity_timeout, self.ping_interval)

    def wants_webhook(self, name: str) -> bool:
        """Whether webhook event ``name`` is configured to be sent for this app."""
        if not self.webhook_urls:
            return False
        if self.webhook_events is None:
            return name not in OPT_IN_WEBHOOKS
        return name in self.webhook_events

    def origin_allowed(self, origin: str | None) -> bool:
        """Whether a WebSocket ``Origin`` header is allowed (host patterns, ``*`` wildcards).

        A connection without an ``Origin`` header (a server-side client) is allowed.
        """
        if "*" in self.allowed_origins or origin is None:
            return True
        host = origin.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0].lower()
        return any(
            fnmatch.fnmatchcase(host, pattern.lower())
            or fnmatch.fnmatchcase(origin.lower(), pattern.lower())
            for pattern in self.allowed_origins
        )


class AppRegistry:
    """Looks apps up by key (WebSocket) and by id (HTTP API)."""

    __slots__ = ("_by_id", "_by_key")

    def __init__(self, apps: Iterable[App]) -> None:
        self._by_key: dict[str, App] = {}
        self._by_id: dict[str, App] = {}
        for app in apps:
            if app.key in self._by_key:
                raise ValueError(f"two apps share the key {app.key!r}")
            if app.id in self._by_id:
                raise ValueError(f"two apps share the id {app.id!r}")
            self._by_key[app.key] = app
            self._by_id[app.id] = app

    def by_key(self, key: str) -> App | None:
        """The app with this key, or ``None``."""
        return self._by_key.get(key)

    def by_id(self, app_id: str) -> App | None:
        """The app with this id, or ``None``."""
        return self._by_id.get(app_id)

    def __iter__(self) -> Iterator[App]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)
