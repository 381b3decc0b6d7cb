"""Entries of the debug console: made only while a feed is open, bounded in rate.

A hub reports what happens through its ``trace`` callable as ``(kind, fields)``; the
:class:`Console` turns each report into an entry (a small dict in the shape docs/dashboard.md
describes), keeps the last :data:`KEEP` for feeds that open later, and queues them for the
next push. At most ``rate`` entries a second are made; the others are only counted
(``dropped``), so a flood of events costs the hot paths one call and a counter increment
each, whatever the number of open dashboards.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson

from overtone.hub_state import Trace

KEEP = 500
"""Entries kept for a feed that opens later."""
RATE = 200
"""Entries made per second and node, at most."""
DATA_LIMIT = 500
"""Characters of an event's data shown in an entry."""

KINDS = frozenset(
    {
        "connected",
        "connection_refused",
        "disconnected",
        "subscribed",
        "subscription_refused",
        "unsubscribed",
        "member_added",
        "member_removed",
        "api_event",
        "client_event",
        "signin",
        "error",
        "terminated",
        "dashboard_action",
    }
)

Entry = dict[str, Any]


def _text(data: object) -> str | None:
    """An event's data as the console shows it: a string, cut to :data:`DATA_LIMIT`."""
    if data is None:
        return None
    if not isinstance(data, str):
        try:
            data = orjson.dumps(data).decode()
        except TypeError:
            data = repr(data)
    assert isinstance(data, str)
    return data if len(data) <= DATA_LIMIT else data[:DATA_LIMIT] + "…"


def _origin(origin: object) -> str | None:
    return f"origin {origin}" if isinstance(origin, str) else None


class Console:
    """The debug console of one node."""

    def __init__(
        self,
        node_id: str,
        rate: int = RATE,
        keep: int = KEEP,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.node_id = node_id
        self.rate = rate
        self.clock = clock
        self.recent: deque[Entry] = deque(maxlen=keep)
        self.pending: list[Entry] = []
        """Entries for this node's open feeds (kept only while :attr:`to_feeds`)."""
        self.outbox: list[Entry] = []
        """Entries for the other nodes' feeds (kept only while :attr:`to_cluster`)."""
        self.to_feeds = False
        self.to_cluster = False
        self.dropped = 0
        """Entries not made because the rate bound was reached (since start)."""
        self._seq = 0
        self._second = 0
        self._made = 0

    def tracer(self, app_id: str) -> Trace:
        """The ``trace`` callable for the hub of ``app_id``."""

        def trace(kind: str, fields: dict[str, Any]) -> None:
            self.add(app_id, kind, fields)

        return trace

    def add(self, app_id: str, kind: str, fields: dict[str, Any]) -> None:
        """Make one entry, unless this second's quota is spent (then count it dropped)."""
        now = self.clock()
        second = int(now)
        if second != self._second:
            self._second, self._made = second, 0
        if self._made >= self.rate:
            self.dropped += 1
            return
        self._made += 1
        self._seq += 1
        entry: Entry = {
            "seq": self._seq,
            "t": round(now, 3),
            "app": app_id,
            "node": self.node_id,
            "kind": kind,
            "socket_id": fields.get("socket_id"),
            "channel": fields.get("channel"),
            "event": fields.get("event"),
            "user_id": fields.get("user_id"),
            "code": fields.get("code"),
            "message": fields.get("message") or _origin(fields.get("origin")),
            "data": _text(fields.get("data")),
        }
        self.recent.append(entry)
        if self.to_feeds:
            self.pending.append(entry)
        if self.to_cluster:
            self.outbox.append(entry)

    def receive(self, entries: object) -> None:
        """Entries another node made (from its ``load`` report), for this node's feeds."""
        if not isinstance(entries, list):
            return
        for entry in entries[: self.rate]:
            if isinstance(entry, dict) and entry.get("kind") in KINDS:
                self.recent.append(entry)
                if self.to_feeds:
                    self.pending.append(entry)

    def take(self) -> list[Entry]:
        """The entries for this node's feeds since the last call, oldest first."""
        pending, self.pending = self.pending, []
        return pending

    def take_outbox(self) -> list[Entry]:
        """The entries for the other nodes since the last call, oldest first."""
        outbox, self.outbox = self.outbox, []
        return outbox
