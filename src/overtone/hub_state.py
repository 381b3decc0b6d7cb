"""What a hub holds, what it can answer, and how it writes to sessions. Sans-I/O.

:class:`HubState` is the data half of :class:`overtone.hub.Hub`: the sessions, channels,
signed-in users, cache and watchlists of one app on this node, the replica of what the other
nodes hold, the cluster-wide queries over both, and the output helpers that write frames and
count what was sent. The behaviour (what each client message or API call does) is in
:mod:`overtone.hub`.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable
from typing import Any

from overtone.apps import App
from overtone.channels.cache import EventCache
from overtone.channels.channel import Channel
from overtone.channels.counts import CountFeed
from overtone.channels.history import History, HistoryBudget
from overtone.channels.replica import OrderedShare, RemoteApp
from overtone.channels.watchlist import Watchlists
from overtone.protocol import messages
from overtone.protocol.errors import PusherError
from overtone.protocol.frames import encode_frame
from overtone.session import Session
from overtone.stats import AppStats

Emit = Callable[[dict[str, Any]], None]
Trace = Callable[[str, dict[str, Any]], None]
"""Receives ``(kind, fields)`` for each thing the debug console shows (see
:mod:`overtone.dashboard.console` for the kinds and fields)."""

DEFAULT_HISTORY_MEMORY = 64 * 1_048_576
"""Bytes of history a hub may hold when no node-wide budget is given."""


def new_epoch() -> str:
    """A fresh, unguessable stream epoch (72 random bits: never reused in practice)."""
    return secrets.token_urlsafe(9)


class HubState:
    """One app's state on this node, with cluster-wide queries and output helpers."""

    def __init__(
        self,
        app: App,
        new_socket_id: Callable[[], str],
        pong_timeout: float,
        history_budget: HistoryBudget | None = None,
    ) -> None:
        self.app = app
        self.pong_timeout = pong_timeout
        self._new_socket_id = new_socket_id
        self.sessions: dict[str, Session] = {}
        self.channels: dict[str, Channel[Session]] = {}
        self.users: dict[str, set[Session]] = {}
        self.cache = EventCache(app.cache_ttl)
        self.history: History | None = None
        self._history_swept = float("-inf")
        self.sequenced: Callable[[], bool] | None = None
        """In a cluster: whether the broker can give events their offsets right now."""
        self.load_stream: Callable[[str], None] | None = None
        """In a cluster: fetch a stream from the shared store; the answer comes back
        through :meth:`overtone.hub.Hub.stream_loaded`."""
        self.loading: dict[str, list[tuple[Session, object]]] = {}
        """Streams being fetched, with the subscriptions (and their ``recover``) waiting."""
        self.loaded_callbacks: dict[str, list[Callable[[], None]]] = {}
        self.stale_reads: set[str] = set()
        """Streams that restarted while being read: the answer is read again."""
        """Streams being fetched, with the HTTP answers waiting for them."""
        self.unsequenced: set[str] = set()
        """Channels that had events delivered here without an offset (broker away)."""
        """Per-channel event history (``None`` when the app has history off)."""
        if app.history.enabled:
            budget = history_budget or HistoryBudget(DEFAULT_HISTORY_MEMORY)
            self.history = History(app.history, budget, new_epoch)
        self.watchlists: Watchlists[Session] = Watchlists()
        self.remote = RemoteApp()
        self.stats = AppStats()
        self.ordered = OrderedShare()
        """This node's own counts as replayed from the broker, in the broker's order."""
        self.emit: Emit | None = None
        """Set by the cluster layer; ``None`` on a single node (nothing to tell anyone)."""
        self.webhook: Emit | None = None
        """Set by the transport when the app has webhook URLs; receives webhook events."""
        self.trace: Trace | None = None
        """Set while a dashboard console watches this node; ``None`` otherwise, so the
        hot paths pay one attribute test when nobody watches."""
        self.count_events = CountFeed() if app.subscription_count else None
        """Channels owing their subscribers a ``subscription_count`` event (app option)."""
        self.count_hooks = CountFeed() if app.wants_webhook("subscription_count") else None
        """Channels owing the backend a ``subscription_count`` webhook (listed by the app)."""
        self.counts_due: Callable[[float], None] | None = None
        """Set by the transport: call :meth:`~overtone.hub.Hub.flush_counts` in this many
        seconds (an earlier call already arranged stands if it comes sooner)."""
        self.speaks_for_cluster = True
        """Whether this node sends the webhooks one node sends for the cluster (set by the
        cluster layer: one node at a time)."""
        self.authorized = 0
        """Authorized connections on this node, counted while the app requires them."""
        self.unauthorized: deque[tuple[float, Session]] = deque()
        """``(deadline, session)`` of connections that must become authorized, oldest first."""

    # -- output ---------------------------------------------------------------------------

    def hook(self, name: str, **fields: Any) -> None:
        """Queue webhook event ``name`` if the app wants it (never blocks)."""
        if self.webhook is not None and self.app.wants_webhook(name):
            self.webhook({"name": name, **fields})

    def member_event(
        self, name: str, event: str, user_id: str, info: Any = None, exclude: str | None = None
    ) -> None:
        """Send ``member_added`` (with ``info``) or ``member_removed`` to local subscribers."""
        channel = self.channels.get(name)
        if channel is None:
            return
        data: dict[str, Any] = {"user_id": user_id}
        if event == "pusher_internal:member_added":
            data["user_info"] = info
        self._fan_out(channel, encode_frame(messages.channel_event(event, name, data)), exclude)

    def is_online(self, user_id: str) -> bool:
        """Whether ``user_id`` is signed in anywhere in the cluster."""
        return user_id in self.users or user_id in self.remote.users

    def notify_watchers(self, user_id: str, status: str) -> None:
        """Tell local connections watching ``user_id`` that it went online/offline."""
        watchers = self.watchlists.watchers_of(user_id)
        if watchers:
            frame = encode_frame(watchlist_event(status, [user_id]))
            for watcher in watchers:
                watcher.write(frame)
            self.stats.sent(frame, len(watchers))

    def _fan_out(self, channel: Channel[Session], frame: bytes, exclude: str | None) -> None:
        subscribers = channel.subscribers
        if channel.pending:
            # Subscriptions still waiting for their history get it replayed when answered.
            skip = channel.pending if exclude is None else {*channel.pending, exclude}
            sent = 0
            for socket_id, session in subscribers.items():
                if socket_id not in skip:
                    session.write(frame)
                    sent += 1
            self.stats.sent(frame, sent)
        elif exclude is None or exclude not in subscribers:
            # The hot loop: one pre-encoded frame written to every subscriber.
            for session in subscribers.values():
                session.write(frame)
            self.stats.sent(frame, len(subscribers))
        else:
            for socket_id, session in subscribers.items():
                if socket_id != exclude:
                    session.write(frame)
            self.stats.sent(frame, len(subscribers) - 1)

    def _send(self, session: Session, payload: bytes) -> None:
        frame = encode_frame(payload)
        session.write(frame)
        self.stats.sent(frame)

    def _send_error(self, session: Session, err: PusherError) -> None:
        frame = encode_frame(messages.error(err))
        session.write(frame)
        self._count_error(err, frame)
        if self.trace is not None:
            self.trace(
                "error", {"socket_id": session.socket_id, "code": err.code, "message": err.message}
            )

    def _count_error(self, err: PusherError, frame: bytes) -> None:
        self.stats.sent(frame)
        self.stats.errors[err.code or 0] += 1

    # -- queries (cluster-wide) -----------------------------------------------------------

    def connection_count(self) -> int:
        """Connections to this app in the whole cluster."""
        return len(self.sessions) + self.remote.connections

    def channel_names(self) -> set[str]:
        """Occupied channels in the whole cluster."""
        return set(self.channels) | set(self.remote.channels)

    def subscription_count(self, name: str) -> int:
        """Connections subscribed to ``name`` in the whole cluster."""
        channel = self.channels.get(name)
        local = len(channel.subscribers) if channel is not None else 0
        return local + self.remote.subscription_count(name)

    def presence_members(self, name: str) -> dict[str, Any]:
        """``user_id -> user_info`` of presence channel ``name`` in the whole cluster."""
        members = {
            user_id: self.remote.member_info.get((name, user_id))
            for user_id in self.remote.channel_users(name)
        }
        channel = self.channels.get(name)
        if channel is not None and channel.roster is not None:
            members.update((uid, m.user_info) for uid, m in channel.roster.members.items())
        return members

    def presence_snapshot(self, name: str) -> dict[str, Any]:
        """The ``presence`` object of ``subscription_succeeded``."""
        members = self.presence_members(name)
        return {"ids": list(members), "hash": members, "count": len(members)}

    def user_count(self, name: str) -> int:
        """Distinct presence users of ``name`` in the whole cluster."""
        return len(self.presence_members(name))

    def user_ids(self, name: str) -> list[str]:
        """User ids present in presence channel ``name``."""
        return list(self.presence_members(name))

    def cached_event(self, name: str, now: float) -> Any:
        """The cached last event of ``name`` as a JSON object, or ``None``."""
        payload = self.cache.get(name, now)
        return messages.decode(payload) if payload is not None else None


def watchlist_event(name: str, user_ids: list[str]) -> bytes:
    """A ``pusher_internal:watchlist_events`` frame payload with one event."""
    return messages.plain_event(
        "pusher_internal:watchlist_events", {"events": [{"name": name, "user_ids": user_ids}]}
    )
