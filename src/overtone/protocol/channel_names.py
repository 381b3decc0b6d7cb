"""Channel names: validation and the one classifier that decides a channel's type.

Types are decided by exact prefix (protocol.md §2), longest prefix first, so that
``cached-x`` is a public channel and ``private-encrypted-cache-x`` is encrypted and cached.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

MAX_CHANNEL_NAME = 164
MAX_EVENT_NAME = 200
SERVER_TO_USER_PREFIX = "#server-to-user-"

_VALID_NAME = re.compile(r"[A-Za-z0-9_\-=@,.;]+")


@dataclass(frozen=True, slots=True)
class ChannelType:
    """What a channel's name says about it."""

    private: bool = False
    presence: bool = False
    encrypted: bool = False
    cache: bool = False
    server_to_user: bool = False

    @property
    def needs_auth(self) -> bool:
        """Private, presence and encrypted channels need a signed ``auth``."""
        return self.private or self.presence

    @property
    def accepts_client_events(self) -> bool:
        """Client events only travel on private and presence channels, never encrypted."""
        return (self.private or self.presence) and not self.encrypted

    @property
    def counts_subscriptions(self) -> bool:
        """Whether subscription counting applies: every channel but presence channels
        (where ``user_count`` serves) and ``#server-to-user-*`` channels."""
        return not (self.presence or self.server_to_user)


PUBLIC = ChannelType()

# Longest prefix first: the first match wins.
_PREFIXES: tuple[tuple[str, ChannelType], ...] = (
    ("private-encrypted-cache-", ChannelType(private=True, encrypted=True, cache=True)),
    ("private-encrypted-", ChannelType(private=True, encrypted=True)),
    ("private-cache-", ChannelType(private=True, cache=True)),
    ("presence-cache-", ChannelType(presence=True, cache=True)),
    ("cache-", ChannelType(cache=True)),
    ("private-", ChannelType(private=True)),
    ("presence-", ChannelType(presence=True)),
    (SERVER_TO_USER_PREFIX, ChannelType(server_to_user=True)),
)


@lru_cache(maxsize=4096)
def classify(name: str) -> ChannelType:
    """Return the type of channel ``name`` (assumed valid, see :func:`name_error`)."""
    for prefix, kind in _PREFIXES:
        if name.startswith(prefix):
            return kind
    return PUBLIC


def server_to_user_id(name: str) -> str | None:
    """The user id of a ``#server-to-user-{id}`` channel, else ``None``."""
    if name.startswith(SERVER_TO_USER_PREFIX):
        return name[len(SERVER_TO_USER_PREFIX) :]
    return None


def name_error(name: object) -> str | None:
    """Why ``name`` is not a valid channel name, or ``None`` when it is."""
    if not isinstance(name, str) or not name:
        return "channel name must be a non-empty string"
    if len(name) > MAX_CHANNEL_NAME:
        return f"channel name is longer than {MAX_CHANNEL_NAME} characters"
    return _characters_error(name)


@lru_cache(maxsize=4096)
def _characters_error(name: str) -> str | None:
    """Why ``name`` (at most :data:`MAX_CHANNEL_NAME` long) has a character a channel name
    may not have, or ``None``.

    Cached (at most 4096 short names, under 1 MB): subscribes and triggers repeat the same
    names, and a hit costs about half the pattern match.
    """
    body = name[len(SERVER_TO_USER_PREFIX) :] if name.startswith(SERVER_TO_USER_PREFIX) else name
    if not _VALID_NAME.fullmatch(body):
        return "channel name may only contain A-Z a-z 0-9 _ - = @ , . ;"
    return None


def event_name_error(name: object) -> str | None:
    """Why ``name`` is not a valid event name, or ``None`` when it is."""
    if not isinstance(name, str) or not name:
        return "event name must be a non-empty string"
    if len(name) > MAX_EVENT_NAME:
        return f"event name is longer than {MAX_EVENT_NAME} characters"
    return None
