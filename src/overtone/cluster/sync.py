"""Applying other nodes' messages to a hub, and describing a hub's own share. Pure.

Message types (``t``), as emitted by :class:`~overtone.hub.Hub`:

| ``t`` | fields | meaning |
|---|---|---|
| ``conn`` | ``d`` | connection count changed by ``d`` (net, over a batch) |
| ``auth`` | ``d`` | authorized connections changed by ``d`` (net, over a batch) |
| ``subs`` | ``c`` | per channel, the subscription count's net change over a batch, or
  ``[net, lowest, highest]`` when it went down and up within it |
| ``sub`` | ``c``, ``d`` | subscriptions to channel ``c`` changed by ``d`` (older nodes) |
| ``join`` / ``leave`` | ``c``, ``u``, ``i`` | user ``u`` became present in presence channel
  ``c`` on the sending node (its first connection there) / is no longer (its last) |
| ``in`` / ``out`` | ``u`` | user ``u`` signed in on the sending node (its first connection
  there) / signed out (its last) |
| ``ev`` | ``c``, ``p``, ``x``, ``n`` | deliver encoded event ``p`` on ``c``, except to socket
  ``x``; with ``n``, once the broker numbered it (history) |
| ``term`` | ``u`` | close user ``u``'s connections |
| ``hreset`` | ``c`` | the streams of channels ``c`` restart in a new epoch: forget them |
"""

from __future__ import annotations

from typing import Any

from overtone.channels.replica import Changes, Share
from overtone.hub import Hub

ADDED = "pusher_internal:member_added"
REMOVED = "pusher_internal:member_removed"


def apply(hub: Hub, node: str, message: dict[str, Any], now: float) -> None:
    """Apply one message from ``node``; unknown or malformed messages are ignored."""
    kind = message.get("t")
    remote = hub.remote
    try:
        if kind == "ev":
            exclude = message.get("x")
            hub.deliver(
                str(message["c"]),
                str(message["p"]).encode(),
                exclude if isinstance(exclude, str) else None,
                now,
            )
        elif kind == "subs":
            for channel, change in message["c"].items():
                remote.subscribe(node, str(channel), int(_net(change)))
                hub.count_changed(str(channel))
        elif kind == "sub":
            remote.subscribe(node, str(message["c"]), int(message["d"]))
            hub.count_changed(str(message["c"]))
        elif kind == "conn":
            remote.connect(node, int(message["d"]))
        elif kind == "auth":
            remote.authorize(node, int(message["d"]))
        elif kind == "join":
            channel, user_id, info = str(message["c"]), str(message["u"]), message.get("i")
            if remote.join(node, channel, user_id, info) and not _local_member(
                hub, channel, user_id
            ):
                hub.member_event(channel, ADDED, user_id, info)
        elif kind == "leave":
            channel, user_id = str(message["c"]), str(message["u"])
            if remote.leave(node, channel, user_id) and not _local_member(hub, channel, user_id):
                hub.member_event(channel, REMOVED, user_id)
        elif kind == "in":
            user_id = str(message["u"])
            if remote.sign_in(node, user_id) and user_id not in hub.users:
                hub.notify_watchers(user_id, "online")
        elif kind == "out":
            user_id = str(message["u"])
            if remote.sign_out(node, user_id) and user_id not in hub.users:
                hub.notify_watchers(user_id, "offline")
        elif kind == "term":
            hub.terminate_user(str(message["u"]), tell_cluster=False)
        elif kind == "hreset" and hub.history is not None:
            for channel in message["c"]:
                hub.history.forget(str(channel))
                hub.catch_up(str(channel), None)  # events reached the sender's clients only
    except (KeyError, TypeError, ValueError):
        return


def apply_own(hub: Hub, message: dict[str, Any]) -> None:
    """Replay one of this node's own messages as it comes back from the broker.

    Every node sees the broker's messages in the same order, so the node whose own message
    takes a channel's cluster-wide subscription count across zero (or a user's presence in a
    channel) is the one, and the only one, that sends ``channel_occupied``/``channel_vacated``
    (``member_added``/``member_removed``).
    """
    kind = message.get("t")
    try:
        if kind == "subs":
            for channel, change in message["c"].items():
                _own_subscriptions(hub, str(channel), change)
        elif kind in ("join", "leave"):
            channel, user_id = str(message["c"]), str(message["u"])
            remote = hub.remote.channel_users(channel).get(user_id, 0)
            before = remote + hub.ordered.members.get((channel, user_id), 0)
            after = remote + hub.ordered.member((channel, user_id), 1 if kind == "join" else -1)
            if before == 0 < after:
                hub.hook("member_added", channel=channel, user_id=user_id)
            elif after == 0 < before:
                hub.hook("member_removed", channel=channel, user_id=user_id)
    except (KeyError, TypeError, ValueError):
        return


def _net(change: Any) -> int:
    """The net change of a ``subs`` entry (an int, or ``[net, lowest, highest]``)."""
    return int(change[0] if isinstance(change, list) else change)


def _own_subscriptions(hub: Hub, channel: str, change: Any) -> None:
    """Replay this node's subscription changes to one channel over a batch: occupied and
    vacated are due when the cluster-wide count reached zero from either side on the way."""
    if isinstance(change, list):
        net, low, high = (int(value) for value in change)
    else:
        net = int(change)
        low, high = min(net, 0), max(net, 0)
    remote = hub.remote.subscription_count(channel)
    before = remote + hub.ordered.channels.get(channel, 0)
    after = remote + hub.ordered.subscribe(channel, net)
    if before == 0 and before + high > 0:
        hub.hook("channel_occupied", channel=channel)
        if after == 0:
            hub.hook("channel_vacated", channel=channel)
    elif before > 0 and before + low <= 0:
        hub.hook("channel_vacated", channel=channel)
        if after > 0:
            hub.hook("channel_occupied", channel=channel)


def replace_share(hub: Hub, node: str, share: Share | None, *, responsible: bool = False) -> None:
    """Replace (or with ``None`` forget) everything ``node`` holds, with the due events.

    When a node dies nobody else caused its members and channels to go, so exactly one
    surviving node (``responsible``) sends the ``member_removed``/``channel_vacated`` webhooks.
    """
    before = hub.remote.shares.get(node)
    changes: Changes = hub.remote.replace(node, share)
    for channel in {*(before.channels if before else ()), *(share.channels if share else ())}:
        hub.count_changed(channel)
    for channel, user_id in changes.members_gone:
        if not _local_member(hub, channel, user_id):
            hub.member_event(channel, REMOVED, user_id)
        if responsible and not hub.ordered.members.get((channel, user_id)):
            hub.hook("member_removed", channel=channel, user_id=user_id)
    if responsible:
        for channel in changes.channels_gone:
            if not hub.ordered.channels.get(channel):
                hub.hook("channel_vacated", channel=channel)
    for channel, user_id in changes.members_added:
        if not _local_member(hub, channel, user_id):
            info = hub.remote.member_info.get((channel, user_id))
            hub.member_event(channel, ADDED, user_id, info)
    for user_id in changes.users_gone:
        if user_id not in hub.users:
            hub.notify_watchers(user_id, "offline")
    for user_id in changes.users_added:
        if user_id not in hub.users:
            hub.notify_watchers(user_id, "online")


def local_share(hub: Hub) -> Share:
    """What this node holds for the hub's app, for ``hello``/``sync`` messages."""
    share = Share(connections=len(hub.sessions), authorized=hub.authorized)
    for name, channel in hub.channels.items():
        share.channels[name] = len(channel.subscribers)
        if channel.roster is not None:
            for user_id, member in channel.roster.members.items():
                share.members[(name, user_id)] = [member.user_info, 1]
    share.users = dict.fromkeys(hub.users, 1)
    return share


def _local_member(hub: Hub, channel: str, user_id: str) -> bool:
    local = hub.channels.get(channel)
    return local is not None and local.roster is not None and user_id in local.roster.members
