"""Subscription counting (hosted Pusher's ``subscription_count``). Sans-I/O.

Every change of a channel's cluster-wide subscription count (a local subscribe or
unsubscribe, another node's batch, a node joining or gone) marks the channel
(:meth:`HubCounts.count_changed`); the transport's clock calls
:meth:`HubCounts.flush_counts`, which announces the marked channels that are due, coalesced
and bounded as :mod:`overtone.channels.counts` describes:

- ``pusher_internal:subscription_count`` to the channel's subscribers on this node, when the
  app has subscription counting on. A new subscriber gets the count at once, in the same
  write as its ``subscription_succeeded`` (no fan-out), so it never waits for the next one.
- the ``subscription_count`` webhook, when the app lists it, sent by one node of a cluster
  (:attr:`HubCounts.speaks_for_cluster`) from its view of the cluster-wide count.
"""

from __future__ import annotations

from overtone.channels.counts import event_interval, webhook_interval
from overtone.hub_state import HubState
from overtone.protocol import messages
from overtone.protocol.channel_names import classify
from overtone.protocol.frames import encode_frame


class HubCounts(HubState):
    """Announcing subscription counts, on top of the hub's state."""

    def count_changed(self, name: str) -> None:
        """Channel ``name``'s count changed (here or on another node): announce it soon
        (nothing to do when the app neither counts nor wants the count webhook)."""
        if (self.count_events is None and self.count_hooks is None) or not classify(
            name
        ).counts_subscriptions:
            return
        first = False
        if self.count_events is not None and name in self.channels:
            first = self.count_events.mark(name)
        if self.count_hooks is not None and self.speaks_for_cluster:
            first = self.count_hooks.mark(name) or first
        if first and self.counts_due is not None:
            self.counts_due(0.0)

    def flush_counts(self, now: float) -> float | None:
        """Announce the marked channels that are due; the seconds until the next one is
        (``None``: nothing left marked)."""
        wait: float | None = None
        if self.count_events is not None:
            due, wait = self.count_events.take_due(
                now, self.subscription_count, self._event_interval
            )
            for name, count in due:
                channel = self.channels.get(name)
                if channel is not None:
                    self._fan_out(channel, encode_frame(count_event(name, count)), None)
        if self.count_hooks is not None:
            due, later = self.count_hooks.take_due(now, self.subscription_count, _webhook_interval)
            for name, count in due:
                self.hook("subscription_count", channel=name, subscription_count=count)
            if later is not None and (wait is None or later < wait):
                wait = later
        return wait

    def _count_frame(self, name: str, now: float) -> bytes | None:
        """The frame that tells a new subscriber the channel's count (``None`` when the app
        does not count subscriptions, or not on this channel); the caller writes it together
        with ``subscription_succeeded``: one more write per subscription was most of what
        the feature cost a connection storm (benchmarks.counts).

        When the channel has no other subscriber here, that frame is this node's
        announcement of the count, so the next flush does not repeat it to the same client.
        """
        feed = self.count_events
        if feed is None or not classify(name).counts_subscriptions:
            return None
        count = self.subscription_count(name)
        channel = self.channels.get(name)
        if channel is not None and len(channel.subscribers) == 1:
            feed.announce(name, count, now + event_interval(1))
        frame = encode_frame(count_event(name, count))
        self.stats.sent(frame)
        return frame

    def _event_interval(self, name: str, _count: int) -> float:
        channel = self.channels.get(name)
        return event_interval(len(channel.subscribers) if channel is not None else 0)

    def sweep_counts(self, now: float) -> None:
        """Forget old announcements (call about once a second)."""
        for feed in (self.count_events, self.count_hooks):
            if feed is not None:
                feed.sweep(now)


def _webhook_interval(_name: str, count: int) -> float:
    return webhook_interval(count)


def count_event(name: str, count: int) -> bytes:
    """A ``pusher_internal:subscription_count`` payload; ``data`` is a JSON string, as
    hosted Pusher sends it (the mobile SDKs parse it as one)."""
    return messages.channel_event(
        "pusher_internal:subscription_count", name, f'{{"subscription_count":{count}}}'
    )
