"""The per-app core: sessions, channels, presence, cache and watchlists. Sans-I/O.

A :class:`Hub` is driven by calls (a frame arrived, a connection went away, the HTTP API
published an event, the clock ticked) that carry ``now`` explicitly, and answers through
each session's ``write``/``close`` callables. It never reads a clock, never awaits and
never touches a socket, so every behaviour is testable with plain function calls.

In a cluster, every change other nodes must know is handed to :attr:`Hub.emit` as a small
message, and :attr:`Hub.remote` holds what the other nodes reported (see
:mod:`overtone.cluster.sync`, which applies their messages). Presence, watchlists, counts
and quotas always combine local and remote state, so a cluster behaves as one server.

Delivery is at most once: a frame written to a session whose transport later fails is lost.
Within one node, events to one channel reach subscribers in publish order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from overtone.apps import ClientEventsFrom
from overtone.hub_state import watchlist_event
from overtone.hub_subscriptions import HubSubscriptions
from overtone.protocol import errors, messages
from overtone.protocol.channel_names import SERVER_TO_USER_PREFIX, classify, name_error
from overtone.protocol.errors import PusherError
from overtone.protocol.frames import encode_frame
from overtone.protocol.signin import parse_signin
from overtone.session import CloseWith, Session, WriteFrame

PING_FRAME = encode_frame(messages.PING)
PONG_FRAME = encode_frame(messages.PONG)
HISTORY_SWEEP = 5.0
"""Seconds between sweeps of expired history (reads also expire what they pass)."""


class Hub(HubSubscriptions):
    """Everything one app's connections share on this node."""

    # -- connection lifecycle -------------------------------------------------------------

    def connect(
        self, write: WriteFrame, close: CloseWith, origin: str | None, now: float
    ) -> Session | None:
        """Accept a new connection, or refuse it (error frame + close) and return ``None``."""
        refusal = self._refusal(origin)
        if refusal is not None:
            frame = encode_frame(messages.error(refusal))
            write(frame)
            self._count_error(refusal, frame)
            close(refusal.code or 4200, refusal.message)
            if self.trace is not None:
                self.trace(
                    "connection_refused",
                    {"code": refusal.code, "message": refusal.message, "origin": origin},
                )
            return None
        session = Session(self._new_socket_id(), write, close, now)
        self.sessions[session.socket_id] = session
        self._await_authorization(session, now)
        self.stats.connections_opened += 1
        if self.emit is not None:
            self.emit({"t": "conn", "d": 1})
        self._send(
            session, messages.connection_established(session.socket_id, self.app.activity_timeout)
        )
        if self.trace is not None:
            self.trace("connected", {"socket_id": session.socket_id, "origin": origin})
        return session

    def _refusal(self, origin: str | None) -> PusherError | None:
        if not self.app.enabled:
            return errors.APP_DISABLED
        if not self.app.origin_allowed(origin):
            return errors.BAD_ORIGIN
        limit = self.app.max_connections
        if limit is not None:
            # With authorized connections on, only those count against the quota.
            if self.app.authorized_connections:
                counted = self.authorized_count()
            else:
                counted = len(self.sessions) + self.remote.connections
            if counted >= limit:
                return errors.OVER_QUOTA
        return None

    def disconnect(self, session: Session, code: int | None = None) -> None:
        """Forget a session whose connection is gone (idempotent); ``code`` is the close
        code either side sent (``None``: the connection just went away)."""
        if session.closed:
            return
        session.closed = True
        del self.sessions[session.socket_id]
        self.stats.connections_closed += 1
        for name in session.channels:  # closed: _leave leaves the list alone
            self._leave(session, name)
        if session.user_id is not None:
            self._sign_out(session)
        self._forget_authorized(session)
        if self.emit is not None:
            self.emit({"t": "conn", "d": -1})
        if self.trace is not None:
            self.trace("disconnected", {"socket_id": session.socket_id, "code": code})

    def close_session(self, session: Session, err: PusherError) -> None:
        """Send ``err``, close with its code, and forget the session at once."""
        if session.closed:
            return
        self._send_error(session, err)
        self.disconnect(session, err.code or 4200)
        session.close(err.code or 4200, err.message)

    def close_all(self, err: PusherError) -> None:
        """Close every session with ``err`` (graceful shutdown uses 4200)."""
        for session in list(self.sessions.values()):
            self.close_session(session, err)

    def tick(self, now: float) -> None:
        """Keepalive and housekeeping; call about once a second.

        A connection still unauthorized at its deadline (authorized connections) is closed
        with 4009.

        A session silent for ``App.ping_after`` (the activity timeout, or the app's
        ``ping_interval`` if shorter) gets ``pusher:ping``; one that stays silent
        ``pong_timeout`` longer is closed with 4201.
        """
        for session in self._unauthorized_at(now):
            self.close_session(session, errors.NOT_AUTHORIZED_IN_TIME)
        idle = self.app.ping_after
        for session in list(self.sessions.values()):
            if session.ping_sent is not None:
                if now - session.ping_sent >= self.pong_timeout:
                    self.close_session(session, errors.PONG_NOT_RECEIVED)
            elif now - session.last_seen >= idle:
                session.ping_sent = now
                session.write(PING_FRAME)
                self.stats.sent(PING_FRAME)
        self.cache.sweep(now)
        self.sweep_counts(now)
        if self.history is not None and now - self._history_swept >= HISTORY_SWEEP:
            self._history_swept = now
            self.history.sweep(now, self.channels.__contains__)

    # -- messages from clients ------------------------------------------------------------

    def receive(self, session: Session, text: str, now: float) -> None:
        """Handle one text message from ``session``'s client."""
        session.last_seen = now
        session.ping_sent = None
        stats = self.stats
        stats.messages_in += 1
        stats.bytes_in += len(text)
        message = messages.decode(text)
        if message is None:
            self._send_error(session, errors.INVALID_MESSAGE)
            return
        event: str = message["event"]
        data = message.get("data")
        if event == "pusher:ping":
            session.write(PONG_FRAME)
            stats.sent(PONG_FRAME)
        elif event == "pusher:pong":
            pass
        elif event == "pusher:subscribe":
            refusal = self._subscribe(session, data, now)
            if refusal is not None:
                self.close_session(session, refusal)
        elif event == "pusher:unsubscribe":
            if isinstance(data, dict) and isinstance(data.get("channel"), str):
                self._leave(session, data["channel"])
                if self.trace is not None:
                    self.trace(
                        "unsubscribed", {"socket_id": session.socket_id, "channel": data["channel"]}
                    )
        elif event == "pusher:signin":
            self._sign_in(session, data)
        elif event.startswith("client-"):
            self._client_event(session, event, message.get("channel"), data, now)
        elif event.startswith("pusher_internal:"):
            self._send_error(session, errors.reserved_event(event))
        else:
            self._send_error(session, errors.INVALID_MESSAGE)

    def _client_event(
        self, session: Session, event: str, name: object, data: object, now: float
    ) -> None:
        app = self.app
        if not isinstance(name, str) or name_error(name) is not None or len(event) > 200:
            self._send_error(session, errors.INVALID_MESSAGE)
            return
        refusal = self._client_event_refusal(session, name)
        if refusal is not None:
            self._send_error(session, refusal)
            return
        limit = app.rate_limit
        if limit.enabled and not session.allow_client_event(
            limit.max_attempts, limit.decay_seconds, now
        ):
            if limit.terminate:
                self.close_session(session, errors.RATE_LIMITED)
            else:
                self._send_error(session, errors.RATE_LIMITED)
            return
        channel = self.channels.get(name)
        user_id = None
        if channel is not None and channel.roster is not None:
            user_id = channel.roster.by_socket.get(session.socket_id)
        payload = messages.event(event, name, data, user_id)
        if payload is None:
            self._send_error(session, errors.INVALID_MESSAGE)
            return
        self.deliver(name, payload, session.socket_id, now)
        if self.emit is not None:
            self.emit({"t": "ev", "c": name, "p": payload.decode(), "x": session.socket_id})
        if self.trace is not None:
            self.trace(
                "client_event",
                {
                    "socket_id": session.socket_id,
                    "channel": name,
                    "event": event,
                    "user_id": user_id,
                    "data": data,
                },
            )
        if self.webhook is not None and self.app.wants_webhook("client_event"):
            fields: dict[str, Any] = {
                "channel": name,
                "event": event,
                "data": data if isinstance(data, str) else messages.encode_text(data),
                "socket_id": session.socket_id,
            }
            if user_id is not None:
                fields["user_id"] = user_id
            self.hook("client_event", **fields)

    def _client_event_refusal(self, session: Session, name: str) -> PusherError | None:
        if self.app.client_events_from is ClientEventsFrom.NONE:
            return errors.CLIENT_EVENTS_DISABLED
        if not classify(name).accepts_client_events:
            return errors.CLIENT_EVENT_WRONG_CHANNEL
        if self.app.client_events_from is ClientEventsFrom.MEMBERS and (
            not self._receives(session, name)
        ):
            return errors.CLIENT_EVENT_NOT_SUBSCRIBED
        return None

    # -- user sign-in and watchlists ------------------------------------------------------

    def _sign_in(self, session: Session, data: object) -> None:
        result = parse_signin(self.app.key, self.app.secret, session.socket_id, data)
        if isinstance(result, PusherError):
            self.close_session(session, result)
            return
        refusal = self._authorize(session)
        if refusal is not None:
            self.close_session(session, refusal)
            return
        user_id, user_data, watchlist = result
        if session.user_id is not None:
            self._sign_out(session)
        session.user_id = user_id
        session.watchlist = watchlist
        sessions = self.users.setdefault(user_id, set())
        first_here = not sessions
        sessions.add(session)
        self._send(session, messages.plain_event("pusher:signin_success", {"user_data": user_data}))
        if self.trace is not None:
            self.trace("signin", {"socket_id": session.socket_id, "user_id": user_id})
        # Server-to-user events reach the connection from now on, not only once the client's
        # own subscribe arrives: an app may call sendToUser as soon as sign-in succeeded.
        self._add_subscriber(session, SERVER_TO_USER_PREFIX + user_id)
        self.watchlists.watch(session, watchlist)
        online = [uid for uid in watchlist if self.is_online(uid)]
        if online:
            self._send(session, watchlist_event("online", online))
        if first_here and self.emit is not None:
            self.emit({"t": "in", "u": user_id})
        if first_here and user_id not in self.remote.users:
            self.notify_watchers(user_id, "online")

    def _sign_out(self, session: Session) -> None:
        user_id = session.user_id
        assert user_id is not None
        self._leave(session, SERVER_TO_USER_PREFIX + user_id)
        self.watchlists.unwatch(session, session.watchlist)
        sessions = self.users.get(user_id)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self.users[user_id]
                if self.emit is not None:
                    self.emit({"t": "out", "u": user_id})
                if user_id not in self.remote.users:
                    self.notify_watchers(user_id, "offline")
        session.user_id = None

    # -- publishing -----------------------------------------------------------------------

    def publish(
        self, name: str, channels: Sequence[str], data: str, exclude: str | None, now: float
    ) -> None:
        """Deliver an event everywhere in the cluster except to socket ``exclude``."""
        history = self.history
        if self.trace is not None:
            for channel_name in channels:
                self.trace(
                    "api_event",
                    {"channel": channel_name, "event": name, "data": data, "socket_id": exclude},
                )
        for channel_name in channels:
            payload = messages.event(name, channel_name, data)
            assert payload is not None  # data is a str: always encodable
            if history is not None:
                if self.emit is None:
                    payload = history.append(channel_name, payload, now, exclude)
                elif self.sequenced is not None and self.sequenced():
                    # The broker numbers it; every node, this one included, delivers it
                    # when it comes back with its offset (deliver_sequenced).
                    self.emit(
                        {"t": "ev", "c": channel_name, "p": payload.decode(), "x": exclude, "n": 1}
                    )
                    continue
                else:
                    # Broker away: delivered here only, without an offset; the stream's
                    # epoch changes once the broker is back (see Coordinator.connected).
                    self.unsequenced.add(channel_name)
            self.deliver(channel_name, payload, exclude, now)
            if self.emit is not None:
                self.emit({"t": "ev", "c": channel_name, "p": payload.decode(), "x": exclude})

    def terminate_user(self, user_id: str, *, tell_cluster: bool = True) -> int:
        """Close every connection signed in, or present in a presence channel, as ``user_id``.

        Returns how many local connections were closed; the other nodes are told too.
        """
        targets = set(self.users.get(user_id, ()))
        for channel in self.channels.values():
            if channel.roster is not None and user_id in channel.roster.members:
                targets.update(
                    channel.subscribers[sid]
                    for sid, uid in channel.roster.by_socket.items()
                    if uid == user_id
                )
        for session in targets:
            self.close_session(session, errors.TERMINATED)
        if tell_cluster and self.emit is not None:
            self.emit({"t": "term", "u": user_id})
        if self.trace is not None:
            self.trace(
                "terminated",
                {"user_id": user_id, "message": f"{len(targets)} connection(s) closed here"},
            )
        return len(targets)
