"""What the other nodes hold for one app, replicated from their messages. Pure.

Every node publishes its changes (connections, subscriptions, presence members, signed-in
users) and, on joining or after a broker outage, its whole share. Each node keeps the shares
of the others here, per node, so that a node that dies or resynchronises can be removed or
replaced exactly, and keeps aggregates so that queries are answered without asking anyone.

Methods that change presence members or signed-in users return whether the *remote* total
crossed zero; the hub combines that with its local state to decide, e.g., whether a
``member_added`` is due (first connection anywhere) or a ``member_removed`` (last anywhere).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MemberKey = tuple[str, str]  # (channel, user_id)


@dataclass
class Share:
    """One node's contribution to one app."""

    connections: int = 0
    channels: dict[str, int] = field(default_factory=dict)
    members: dict[MemberKey, list[Any]] = field(default_factory=dict)  # key -> [info, count]
    users: dict[str, int] = field(default_factory=dict)
    authorized: int = 0
    """Authorized connections (apps that require authorization)."""

    def to_wire(self) -> dict[str, Any]:
        """A JSON-ready form (``sync`` messages)."""
        return {
            "conn": self.connections,
            "ch": self.channels,
            "m": [[c, u, info, n] for (c, u), (info, n) in self.members.items()],
            "u": self.users,
            "auth": self.authorized,
        }

    @classmethod
    def from_wire(cls, data: Any) -> Share:
        """Inverse of :meth:`to_wire`; malformed parts are ignored."""
        share = cls()
        if not isinstance(data, dict):
            return share
        conn = data.get("conn")
        share.connections = conn if isinstance(conn, int) and conn > 0 else 0
        authorized = data.get("auth")
        share.authorized = authorized if isinstance(authorized, int) and authorized > 0 else 0
        channels = data.get("ch")
        if isinstance(channels, dict):
            share.channels = {
                str(c): n for c, n in channels.items() if isinstance(n, int) and n > 0
            }
        members = data.get("m")
        if isinstance(members, list):
            for item in members:
                if isinstance(item, list) and len(item) == 4 and isinstance(item[3], int):
                    share.members[(str(item[0]), str(item[1]))] = [item[2], item[3]]
        users = data.get("u")
        if isinstance(users, dict):
            share.users = {str(u): n for u, n in users.items() if isinstance(n, int) and n > 0}
        return share


def _adjust(totals: dict[Any, int], key: Any, delta: int) -> int:
    """Add ``delta`` to ``totals[key]``; +1 if the key appeared, -1 if it vanished, else 0."""
    before = totals.get(key, 0)
    after = before + delta
    if after > 0:
        totals[key] = after
    else:
        totals.pop(key, None)
    if before <= 0 < after:
        return 1
    if after <= 0 < before:
        return -1
    return 0


class RemoteApp:
    """The other nodes' shares of one app, with totals for fast queries."""

    def __init__(self) -> None:
        self.shares: dict[str, Share] = {}
        self.connections = 0
        self.authorized = 0
        self.channels: dict[str, int] = {}
        self.members: dict[str, dict[str, int]] = {}  # channel -> user -> connections
        self.member_info: dict[MemberKey, Any] = {}
        self.users: dict[str, int] = {}

    def _share(self, node: str) -> Share:
        share = self.shares.get(node)
        if share is None:
            share = self.shares[node] = Share()
        return share

    def connect(self, node: str, delta: int) -> None:
        """A node gained (+1) or lost (-1) a connection."""
        share = self._share(node)
        delta = max(delta, -share.connections)
        share.connections += delta
        self.connections += delta

    def authorize(self, node: str, delta: int) -> None:
        """A node's authorized connections changed by ``delta``."""
        share = self._share(node)
        delta = max(delta, -share.authorized)
        share.authorized += delta
        self.authorized += delta

    def subscribe(self, node: str, channel: str, delta: int) -> None:
        """A node's subscription count of ``channel`` changed by ``delta``."""
        share = self._share(node)
        delta = max(delta, -share.channels.get(channel, 0))
        _adjust(share.channels, channel, delta)
        _adjust(self.channels, channel, delta)

    def join(self, node: str, channel: str, user_id: str, info: Any) -> bool:
        """A connection of ``user_id`` joined presence ``channel`` on ``node``.

        True when the user was on no other node before.
        """
        share = self._share(node)
        entry = share.members.get((channel, user_id))
        if entry is None:
            share.members[(channel, user_id)] = [info, 1]
        else:
            entry[1] += 1
        self.member_info[(channel, user_id)] = info
        return _adjust(self.members.setdefault(channel, {}), user_id, 1) == 1

    def leave(self, node: str, channel: str, user_id: str) -> bool:
        """A connection of ``user_id`` left ``channel`` on ``node``; True if it was the last."""
        share = self.shares.get(node)
        entry = share.members.get((channel, user_id)) if share is not None else None
        if share is None or entry is None:
            return False
        entry[1] -= 1
        if entry[1] <= 0:
            del share.members[(channel, user_id)]
        users = self.members.get(channel, {})
        gone = _adjust(users, user_id, -1) == -1
        if gone:
            self.member_info.pop((channel, user_id), None)
            if not users:
                self.members.pop(channel, None)
        return gone

    def sign_in(self, node: str, user_id: str) -> bool:
        """True when ``user_id`` was signed in on no other node before."""
        _adjust(self._share(node).users, user_id, 1)
        return _adjust(self.users, user_id, 1) == 1

    def sign_out(self, node: str, user_id: str) -> bool:
        """True when that was the user's last signed-in connection on the other nodes."""
        share = self.shares.get(node)
        if share is None or user_id not in share.users:
            return False
        _adjust(share.users, user_id, -1)
        return _adjust(self.users, user_id, -1) == -1

    def subscription_count(self, channel: str) -> int:
        """Subscriptions to ``channel`` on the other nodes."""
        return self.channels.get(channel, 0)

    def channel_users(self, channel: str) -> dict[str, int]:
        """Presence users of ``channel`` on the other nodes (do not mutate)."""
        return self.members.get(channel, {})

    def replace(self, node: str, new: Share | None) -> Changes:
        """Replace (or with ``None`` remove) a node's whole share.

        Returns the presence members and signed-in users whose remote presence crossed zero,
        with unchanged ones left out, so a resync of an unchanged node produces no events.
        """
        old = self.shares.pop(node, None)
        changes = Changes()
        if old is not None:
            self.connections -= old.connections
            self.authorized -= old.authorized
            for channel, count in old.channels.items():
                if _adjust(self.channels, channel, -count) == -1:
                    changes.channels_gone.add(channel)
            for (channel, user_id), (_, count) in old.members.items():
                users = self.members.get(channel, {})
                if _adjust(users, user_id, -count) == -1:
                    changes.members_gone.add((channel, user_id))
                    self.member_info.pop((channel, user_id), None)
                    if not users:
                        self.members.pop(channel, None)
            for user_id, count in old.users.items():
                if _adjust(self.users, user_id, -count) == -1:
                    changes.users_gone.add(user_id)
        if new is not None:
            self.shares[node] = new
            self.connections += new.connections
            self.authorized += new.authorized
            for channel, count in new.channels.items():
                if _adjust(self.channels, channel, count) == 1:
                    changes.channels_added.add(channel)
            for (channel, user_id), (info, count) in new.members.items():
                self.member_info[(channel, user_id)] = info
                if _adjust(self.members.setdefault(channel, {}), user_id, count) == 1:
                    changes.members_added.add((channel, user_id))
            for user_id, count in new.users.items():
                if _adjust(self.users, user_id, count) == 1:
                    changes.users_added.add(user_id)
        changes.cancel_out()
        return changes


@dataclass
class Changes:
    """Remote presence transitions caused by replacing a node's share."""

    members_added: set[MemberKey] = field(default_factory=set)
    members_gone: set[MemberKey] = field(default_factory=set)
    users_added: set[str] = field(default_factory=set)
    users_gone: set[str] = field(default_factory=set)
    channels_added: set[str] = field(default_factory=set)
    channels_gone: set[str] = field(default_factory=set)

    def cancel_out(self) -> None:
        """Drop transitions that happened both ways (gone, then back)."""
        again = self.channels_added & self.channels_gone
        self.channels_added -= again
        self.channels_gone -= again
        both = self.members_added & self.members_gone
        self.members_added -= both
        self.members_gone -= both
        back = self.users_added & self.users_gone
        self.users_added -= back
        self.users_gone -= back


@dataclass
class OrderedShare:
    """A node's own subscription and presence counts, changed only when its messages come
    back from the broker, so that they sit in the same order as everyone else's."""

    channels: dict[str, int] = field(default_factory=dict)
    members: dict[MemberKey, int] = field(default_factory=dict)

    def reset(self, share: Share) -> None:
        """Start again from a whole share (our own ``hello``)."""
        self.channels = dict(share.channels)
        self.members = {key: count for key, (_, count) in share.members.items()}

    def subscribe(self, channel: str, delta: int) -> int:
        """Apply a subscription change; return the new count."""
        count = max(self.channels.get(channel, 0) + delta, 0)
        if count:
            self.channels[channel] = count
        else:
            self.channels.pop(channel, None)
        return count

    def member(self, key: MemberKey, delta: int) -> int:
        """Apply a presence connection change; return the new count."""
        count = max(self.members.get(key, 0) + delta, 0)
        if count:
            self.members[key] = count
        else:
            self.members.pop(key, None)
        return count
