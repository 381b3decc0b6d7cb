"""A channel's subscribers and, for presence channels, its roster of members."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from overtone.protocol.channel_names import ChannelType

S = TypeVar("S")


@dataclass(slots=True)
class Member:
    """A presence user: its ``user_info`` and how many of its connections are subscribed."""

    user_info: Any
    connections: int = 1


class Roster:
    """Presence members, unique by ``user_id`` and counted per connection.

    :meth:`join` returns ``True`` only for a user's first connection, :meth:`leave` only
    for its last: exactly when ``member_added``/``member_removed`` must be sent.
    """

    __slots__ = ("by_socket", "members")

    def __init__(self) -> None:
        self.members: dict[str, Member] = {}
        self.by_socket: dict[str, str] = {}

    def join(self, socket_id: str, user_id: str, user_info: Any) -> bool:
        """Record ``socket_id`` as ``user_id``; ``True`` if the user was not present."""
        self.by_socket[socket_id] = user_id
        member = self.members.get(user_id)
        if member is None:
            self.members[user_id] = Member(user_info)
            return True
        member.connections += 1
        return False

    def leave(self, socket_id: str) -> str | None:
        """Forget ``socket_id``; the ``user_id`` if that was the user's last connection."""
        user_id = self.by_socket.pop(socket_id, None)
        if user_id is None:
            return None
        member = self.members[user_id]
        member.connections -= 1
        if member.connections:
            return None
        del self.members[user_id]
        return user_id

    def snapshot(self) -> dict[str, Any]:
        """The ``presence`` object of ``subscription_succeeded``."""
        ids = list(self.members)
        return {
            "ids": ids,
            "hash": {uid: m.user_info for uid, m in self.members.items()},
            "count": len(ids),
        }


class Channel(Generic[S]):
    """Subscribers of one channel, keyed by socket id, in subscription order."""

    __slots__ = ("kind", "name", "pending", "roster", "subscribers")

    def __init__(self, name: str, kind: ChannelType) -> None:
        self.name = name
        self.kind = kind
        self.subscribers: dict[str, S] = {}
        self.roster: Roster | None = Roster() if kind.presence else None
        self.pending: set[str] | None = None
        """Subscribers (socket ids) whose subscription waits for the channel's history:
        nothing is written to them on this channel until it is answered."""

    @property
    def occupied(self) -> bool:
        """Whether anyone is subscribed."""
        return bool(self.subscribers)

    def user_count(self) -> int:
        """Distinct presence users (0 for other channels)."""
        return len(self.roster.members) if self.roster is not None else 0
