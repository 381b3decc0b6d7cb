"""The hub's subscriptions: subscribe, presence joins and leaves, the answer a subscription
gets (position, missed events, cached event), and the channel lifecycle. Sans-I/O.

A subscription that needs a stream this node does not follow yet waits, outside the fan-out
(``Channel.pending``), until :meth:`HubSubscriptions.stream_loaded` brings it.
"""

from __future__ import annotations

from typing import Any

from overtone.channels.channel import Channel
from overtone.channels.history import StreamSnapshot
from overtone.channels.subscription import SubscriptionRefused, check_subscription
from overtone.hub_authorization import HubAuthorization
from overtone.hub_counts import HubCounts
from overtone.hub_streams import CatchUp, HubStreams
from overtone.protocol import errors, messages
from overtone.protocol.channel_names import classify
from overtone.protocol.errors import PusherError
from overtone.protocol.frames import encode_frame
from overtone.session import Session


class HubSubscriptions(HubStreams, HubCounts, HubAuthorization):
    """Subscriptions and presence on top of the hub's state, streams, counts and
    authorization."""

    def _subscribe(self, session: Session, data: object, now: float) -> PusherError | None:
        """Handle ``pusher:subscribe``; the error to close the connection with, if any (a
        signed subscription the connection quota has no room for)."""
        if not isinstance(data, dict):
            self._send_error(session, errors.INVALID_MESSAGE)
            return None
        name = data.get("channel")
        try:
            member = check_subscription(self.app, session, data, self.presence_members)
        except SubscriptionRefused as refused:
            self._send(session, messages.subscription_error(name, refused.message, refused.status))
            if self.trace is not None:
                self.trace(
                    "subscription_refused",
                    {
                        "socket_id": session.socket_id,
                        "channel": name if isinstance(name, str) else None,
                        "code": refused.status,
                        "message": refused.message,
                    },
                )
            return None
        assert isinstance(name, str)
        if classify(name).needs_auth:  # a signed subscription authorizes the connection
            refusal = self._authorize(session)
            if refusal is not None:
                return refusal
        receiving = self._receives(session, name)  # e.g. #server-to-user since sign-in
        channel = self._add_subscriber(session, name)
        if not receiving and member is not None and channel.roster is not None:
            self._join(channel, session, member[0], member[1])
        recover = data.get("recover")
        if self._must_load(name, recover, now):
            assert self.load_stream is not None
            if not receiving:  # withheld until answered; the answer replays what it missed
                channel.pending = (channel.pending or set()) | {session.socket_id}
            reading = self._reading(name)
            self.loading.setdefault(name, []).append((session, recover))
            if not reading:  # after registering: a store may answer at once
                self.load_stream(name)
            return None
        self._subscribed(session, channel, recover, now)
        return None

    def _receives(self, session: Session, name: str) -> bool:
        """Whether ``session`` receives channel ``name`` (subscribed, or its own
        ``#server-to-user`` channel since sign-in)."""
        channel = self.channels.get(name)
        return channel is not None and session.socket_id in channel.subscribers

    def _add_subscriber(self, session: Session, name: str) -> Channel[Session]:
        """Make ``session`` receive channel ``name`` (idempotent); the channel."""
        channel = self.channels.get(name)
        if channel is None:
            channel = self.channels[name] = Channel(name, classify(name))
        if session.socket_id not in channel.subscribers:
            session.channels.append(name)
            channel.subscribers[session.socket_id] = session
            if self.emit is not None:
                self.emit({"t": "sub", "c": name, "d": 1})
            self.count_changed(name)
            if len(channel.subscribers) == 1 and not self.remote.subscription_count(name):
                self._lifecycle_hook("channel_occupied", channel=name)
        return channel

    def _subscribed(
        self, session: Session, channel: Channel[Session], recover: object, now: float
    ) -> None:
        """Answer a subscription that took effect: position, missed events, cached event."""
        name = channel.name
        payload = b"{}"
        if channel.roster is not None:
            payload = messages.encode({"presence": self.presence_snapshot(name)}) or payload
        missed, recovered, position = self._stream_start(name, recover, now)
        frame = encode_frame(
            messages.subscription_succeeded(name, payload.decode(), position, recovered)
        )
        self.stats.sent(frame)
        count = self._count_frame(name, now)
        session.write(frame if count is None else frame + count)
        if self.trace is not None:
            self.trace(
                "subscribed",
                {"socket_id": session.socket_id, "channel": name, "user_id": session.user_id},
            )
        if recovered is not None:
            self._replay(session, name, missed, recover)
        if recovered:
            return  # the client already has the cache channel's last event
        if channel.kind.cache:
            cached = self.cache.get(name, now)
            if cached is None:
                self._send(session, messages.cache_miss(name))
                self.hook("cache_miss", channel=name)
            else:
                self._send(session, cached)

    def stream_loaded(self, name: str, snapshot: StreamSnapshot | None, now: float) -> None:
        """The shared store's copy of stream ``name`` arrived (``None``: unreachable);
        answer the subscriptions that waited for it (or read it again, when the stream
        restarted elsewhere while this read was under way)."""
        if name in self.stale_reads:
            self.stale_reads.discard(name)
            assert self.load_stream is not None
            self.load_stream(name)  # the waiting subscriptions and answers stay registered
            return
        waiting = self.loading.pop(name, [])
        callbacks = self.loaded_callbacks.pop(name, [])
        if snapshot is not None and self.history is not None:
            self.history.merge(name, snapshot, now)
        channel = self.channels.get(name)
        for session, recover in waiting:
            if channel is None or session.closed or session.socket_id not in channel.subscribers:
                continue
            if channel.pending is not None:
                channel.pending.discard(session.socket_id)
            if isinstance(recover, CatchUp):
                self._caught_up(session, channel, recover.since, now)
            else:
                self._subscribed(session, channel, recover, now)
        for callback in callbacks:
            callback()

    def _join(self, channel: Channel[Session], session: Session, user_id: str, info: Any) -> None:
        assert channel.roster is not None
        first_here = channel.roster.join(session.socket_id, user_id, info)
        if first_here and self.trace is not None:
            self.trace(
                "member_added",
                {"socket_id": session.socket_id, "channel": channel.name, "user_id": user_id},
            )
        if first_here and self.emit is not None:  # the other nodes need presence, not counts
            self.emit({"t": "join", "c": channel.name, "u": user_id, "i": info})
        if first_here and user_id not in self.remote.channel_users(channel.name):
            self._lifecycle_hook("member_added", channel=channel.name, user_id=user_id)
            self.member_event(
                channel.name,
                "pusher_internal:member_added",
                user_id,
                info,
                exclude=session.socket_id,
            )

    def _leave(self, session: Session, name: str) -> None:
        channel = self.channels.get(name)
        if channel is None or channel.subscribers.pop(session.socket_id, None) is None:
            return
        if not session.closed:  # disconnect() is iterating over the list
            session.channels.remove(name)
        if channel.pending is not None:
            channel.pending.discard(session.socket_id)
        if self.emit is not None:
            self.emit({"t": "sub", "c": name, "d": -1})
        self.count_changed(name)
        if channel.roster is not None:
            gone = channel.roster.leave(session.socket_id)
            if gone is not None and self.trace is not None:
                self.trace(
                    "member_removed",
                    {"socket_id": session.socket_id, "channel": name, "user_id": gone},
                )
            if gone is not None and self.emit is not None:
                self.emit({"t": "leave", "c": name, "u": gone})
            if gone is not None and gone not in self.remote.channel_users(name):
                self._lifecycle_hook("member_removed", channel=name, user_id=gone)
                self.member_event(name, "pusher_internal:member_removed", gone)
        if not channel.subscribers:
            del self.channels[name]
            if not self.remote.subscription_count(name):
                self._lifecycle_hook("channel_vacated", channel=name)

    def _lifecycle_hook(self, name: str, **fields: Any) -> None:
        """Occupied/vacated/member webhooks decided locally: only on a single node.

        In a cluster the node whose own change crosses zero in the broker's order sends them
        (see :func:`overtone.cluster.sync.apply_own`), so each is sent once cluster-wide.
        """
        if self.emit is None:
            self.hook(name, **fields)
