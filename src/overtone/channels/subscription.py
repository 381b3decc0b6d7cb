"""Whether a ``pusher:subscribe`` may succeed: name, signature and presence limits."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import orjson

from overtone.protocol.channel_names import classify, name_error, server_to_user_id
from overtone.protocol.signatures import channel_auth_ok


class Rules(Protocol):
    """What a subscription check needs of the app (an :class:`overtone.apps.App`)."""

    @property
    def key(self) -> str:
        """The app key, part of every signature."""

    @property
    def secret(self) -> str:
        """The app secret that signs private and presence subscriptions."""

    @property
    def max_presence_members(self) -> int:
        """Members a presence channel holds at most."""

    @property
    def max_presence_user_id(self) -> int:
        """Characters of a presence ``user_id`` at most."""

    @property
    def max_presence_user_info(self) -> int:
        """Bytes of a presence ``user_info`` (as JSON) at most."""


class Subscriber(Protocol):
    """What a subscription check needs to know about the connection."""

    socket_id: str
    user_id: str | None


class SubscriptionRefused(Exception):
    """The subscription fails with ``pusher:subscription_error`` (``status``, ``message``)."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


Member = tuple[str, Any]
MembersOf = Callable[[str], Mapping[str, Any]]
"""Presence members (``user_id -> user_info``) of a channel, cluster-wide."""


def check_subscription(
    app: Rules, conn: Subscriber, data: Mapping[str, Any], members: MembersOf
) -> Member | None:
    """Validate a subscribe request; return the presence ``(user_id, user_info)`` if any.

    Raises :class:`SubscriptionRefused` with status 401 for a bad name or signature and
    403 for presence limits (protocol.md §2).
    """
    name = data.get("channel")
    problem = name_error(name)
    if problem is not None:
        raise SubscriptionRefused(f"Invalid channel: {problem}")
    assert isinstance(name, str)
    kind = classify(name)
    if kind.server_to_user:
        if conn.user_id is None or server_to_user_id(name) != conn.user_id:
            raise SubscriptionRefused("Only the signed-in user may subscribe to its own channel")
        return None
    if not kind.needs_auth:
        return None
    raw_channel_data = data.get("channel_data")
    channel_data = raw_channel_data if isinstance(raw_channel_data, str) else None
    if not channel_auth_ok(
        app.key, app.secret, conn.socket_id, name, data.get("auth"), channel_data
    ):
        raise SubscriptionRefused(f"Invalid signature for channel {name!r}")
    if not kind.presence:
        return None
    return _presence_member(app, name, channel_data, members)


def _presence_member(app: Rules, name: str, channel_data: str | None, members: MembersOf) -> Member:
    if channel_data is None:
        raise SubscriptionRefused("Presence channels need channel_data with a user_id", 400)
    try:
        parsed = orjson.loads(channel_data)
    except orjson.JSONDecodeError:
        raise SubscriptionRefused("channel_data is not valid JSON", 400) from None
    if not isinstance(parsed, dict):
        raise SubscriptionRefused("channel_data must be a JSON object", 400)
    user_id = parsed.get("user_id")
    if isinstance(user_id, bool) or not isinstance(user_id, str | int) or user_id == "":
        raise SubscriptionRefused("channel_data.user_id must be a non-empty string or number", 400)
    user_id = str(user_id)
    if len(user_id) > app.max_presence_user_id:
        raise SubscriptionRefused(
            f"user_id is longer than {app.max_presence_user_id} characters", 403
        )
    user_info = parsed.get("user_info")
    if user_info is not None and len(orjson.dumps(user_info)) > app.max_presence_user_info:
        raise SubscriptionRefused(
            f"user_info is larger than {app.max_presence_user_info} bytes", 403
        )
    present = members(name)
    if user_id not in present and len(present) >= app.max_presence_members:
        raise SubscriptionRefused(
            f"Presence channel is full ({app.max_presence_members} members)", 403
        )
    return user_id, user_info
