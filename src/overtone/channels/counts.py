"""When a channel's subscription count is announced: coalescing and its bounds. Pure.

A count change is not announced at once but marked (:meth:`CountFeed.mark`); the owner
calls :meth:`CountFeed.take_due` when the soonest mark is due, and announces the channels
it returns. After an announcement a channel waits one interval, set by its size then, before
the next, which carries the count at that moment; nothing is announced when the count is
what was last announced (a join and a leave within one interval cost nothing). Setting the
interval when announcing, not when checking, matters: a channel that grows as fast as its
interval would otherwise never be due.

The intervals bound what a busy channel costs:

- **Events to subscribers** (:func:`event_interval`): one event costs one frame per
  subscriber on this node, so the interval grows with them: at most
  ``1 / MIN_INTERVAL`` (10) events a second per channel, and about
  :data:`FRAMES_PER_SECOND` count frames a second per channel (twice that while it doubles
  within an interval) up to ``FRAMES_PER_SECOND * MAX_INTERVAL`` (5 000) subscribers; above
  that one event per :data:`MAX_INTERVAL` seconds. 1 000 frames a second is under 1% of
  what one core fans out, so counts never crowd out events; a room of 10 people still sees
  each join within 0.1 s.
- **Webhooks** (:func:`webhook_interval`): one request entry whatever the size, so every
  change (at most 10 a second) while the channel has up to :data:`BUSY_CHANNEL`
  subscribers, then one per :data:`MAX_INTERVAL` seconds, as hosted Pusher throttles its
  ``subscription_count`` webhook.
"""

from __future__ import annotations

from collections.abc import Callable

MIN_INTERVAL = 0.1
"""Seconds between two announcements of one channel, at least."""
MAX_INTERVAL = 5.0
"""Seconds between two announcements of one channel, at most (while it keeps changing)."""
FRAMES_PER_SECOND = 1_000
"""Count frames a second one channel may cost this node (below ``MAX_INTERVAL``)."""
BUSY_CHANNEL = 100
"""Subscribers above which the webhook slows to one per ``MAX_INTERVAL``."""


def event_interval(local_subscribers: int) -> float:
    """Seconds between two ``subscription_count`` events to a channel with this many
    subscribers on this node."""
    return min(MAX_INTERVAL, max(MIN_INTERVAL, local_subscribers / FRAMES_PER_SECOND))


def webhook_interval(count: int) -> float:
    """Seconds between two ``subscription_count`` webhooks of a channel of ``count``."""
    return MAX_INTERVAL if count > BUSY_CHANNEL else MIN_INTERVAL


class CountFeed:
    """The channels whose count changed since last announced, and the last announcement
    of each (time and count)."""

    __slots__ = ("announced", "changed")

    def __init__(self) -> None:
        self.changed: set[str] = set()
        self.announced: dict[str, tuple[float, int]] = {}
        """channel -> (when it may be announced again, the count last announced)."""

    def mark(self, name: str) -> bool:
        """Record that ``name``'s count changed; ``True`` when nothing else was marked (the
        owner must then arrange a call to :meth:`take_due`)."""
        first = not self.changed
        self.changed.add(name)
        return first

    def take_due(
        self,
        now: float,
        count: Callable[[str], int],
        interval: Callable[[str, int], float],
    ) -> tuple[list[tuple[str, int]], float | None]:
        """The ``(channel, count)`` pairs to announce now, and the seconds until the next
        marked channel is due (``None``: none left).

        ``count(name)`` is the channel's count now; ``interval(name, count)`` how long it
        waits after an announcement of ``count``. A due channel whose count equals its last
        announcement is dropped without being announced.
        """
        due: list[tuple[str, int]] = []
        wait: float | None = None
        for name in list(self.changed):
            value = count(name)
            last = self.announced.get(name)
            if last is not None and last[1] == value:
                self.changed.discard(name)
                continue
            ready = last[0] if last is not None else now
            if ready <= now:
                self.changed.discard(name)
                self.announced[name] = (now + interval(name, value), value)
                due.append((name, value))
            elif wait is None or ready - now < wait:
                wait = ready - now
        return due, wait

    def announce(self, name: str, count: int, ready: float) -> None:
        """Record that ``count`` was announced to every subscriber of ``name`` by other
        means; the next announcement waits until ``ready`` and is dropped if the count is
        still ``count``."""
        self.announced[name] = (ready, count)

    def sweep(self, now: float) -> None:
        """Forget the announcements of channels not marked whose interval is over (their
        next change is due at once anyway)."""
        stale = [
            name
            for name, (ready, _) in self.announced.items()
            if ready <= now and name not in self.changed
        ]
        for name in stale:
            del self.announced[name]
