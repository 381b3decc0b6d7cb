"""Numbering and keeping streams in one place, in memory: what Redis does for a cluster,
for the in-process bus (tests, embedding). Pure: time is passed in.

It follows the broker contract of :mod:`overtone.cluster.broker` for ``appends``,
``resets`` and ``stream``: one :class:`~overtone.channels.history.History` per app with
the bounds the appends carry and no memory cap of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

from overtone.channels.history import History, HistoryBudget, HistoryLimits, StreamSnapshot
from overtone.cluster.broker import StreamAppend, StreamRef
from overtone.hub_state import new_epoch


class MemorySequencer:
    """Streams of every app, numbered in the order :meth:`sequence` is called."""

    def __init__(self) -> None:
        self._apps: dict[str, History] = {}
        self._budget = HistoryBudget(1 << 62)

    def _history(self, app_id: str, max_events: int, ttl: float) -> History:
        limits = HistoryLimits(max_events=max_events, ttl=ttl)
        history = self._apps.get(app_id)
        if history is None:
            # Random epochs, as Redis gives: a new sequencer (a store restarted empty) never
            # repeats an epoch clients hold.
            history = History(limits, self._budget, new_epoch)
            self._apps[app_id] = history
        history.limits = limits  # the bounds of the latest append apply, as in Redis
        return history

    def sequence(
        self, appends: Sequence[StreamAppend], resets: Sequence[StreamRef], now: float
    ) -> list[list[object]]:
        """Forget ``resets``, then number and store ``appends``: their ``[epoch, offset]``."""
        for app_id, channel in resets:
            history = self._apps.get(app_id)
            if history is not None:
                history.forget(channel)
        positions: list[list[object]] = []
        for append in appends:
            history = self._history(append.app_id, append.max_events, append.ttl)
            history.append(append.channel, append.payload, now, append.exclude)
            position = history.position(append.channel, now)
            positions.append([position.epoch, position.offset])
        return positions

    def stream(self, app_id: str, channel: str, ttl: float, now: float) -> StreamSnapshot:
        """The stream as held now (a header is created for an unknown stream)."""
        history = self._apps.get(app_id) or self._history(app_id, 100, ttl)
        position = history.position(channel, now)
        stream = history.streams[channel]
        entries = [e for e in stream.entries if e[1] > now - ttl]
        return StreamSnapshot(position.epoch, position.offset, entries, dict(stream.excluded or {}))
