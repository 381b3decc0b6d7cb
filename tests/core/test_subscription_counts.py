"""Subscription counting on one node: the event, its coalescing bounds, the webhook."""

from __future__ import annotations

import json
from dataclasses import replace
from itertools import count
from typing import Any

import pytest

from overtone.apps import App
from overtone.channels.counts import (
    BUSY_CHANNEL,
    MAX_INTERVAL,
    MIN_INTERVAL,
    CountFeed,
    event_interval,
)
from overtone.channels.history import HistoryLimits
from overtone.hub import Hub
from support.fakes import FakeClient

APP = App(
    id="1",
    key="key",
    secret="secret",
    history=HistoryLimits(enabled=False),
    subscription_count=True,
)
COUNT = "pusher_internal:subscription_count"


class Clock:
    """Stands in for the transport's count clock (server/count_clock.py): one pending
    flush, at the soonest time anyone asked for."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.asked: list[float] = []
        self.at: float | None = None
        self.now = 0.0
        hub.counts_due = self.due

    def due(self, delay: float) -> None:
        self.asked.append(delay)
        when = self.now + delay
        if self.at is None or when < self.at:
            self.at = when

    def flush(self, now: float) -> float | None:
        self.asked.clear()
        self.at = None
        self.now = now
        wait = self.hub.flush_counts(now)
        if wait is not None:
            self.at = now + wait
        return wait

    def run_until(self, now: float) -> int:
        """Run the flushes due up to ``now`` (at their times); how many ran."""
        ran = 0
        while self.at is not None and self.at <= now:
            self.flush(self.at)
            ran += 1
        self.now = now
        return ran


def make_hub(**options: Any) -> tuple[Hub, Clock]:
    ids = count(1)
    hub = Hub(replace(APP, **options), lambda: f"{next(ids)}.1", pong_timeout=30)
    return hub, Clock(hub)


def joined(hub: Hub, channel: str, now: float = 0.0) -> FakeClient:
    c = FakeClient(hub, now=now).connect()
    c.subscribe(channel)
    return c


def counts_in(messages: list[dict[str, Any]]) -> list[int]:
    return [json.loads(m["data"])["subscription_count"] for m in messages if m["event"] == COUNT]


def test_a_new_subscriber_gets_the_count_right_after_subscription_succeeded() -> None:
    hub, _ = make_hub()
    a = joined(hub, "news")
    b = joined(hub, "news")
    frames = b.take()
    assert [m["event"] for m in frames] == [
        "pusher:connection_established",
        "pusher_internal:subscription_succeeded",
        COUNT,
    ]
    assert frames[2] == {"event": COUNT, "channel": "news", "data": '{"subscription_count":2}'}
    assert counts_in(a.take()) == [1]  # its own, at subscribe; the change reaches it at a flush


def test_changes_reach_every_subscriber_at_the_next_flush_and_only_real_changes() -> None:
    hub, clock = make_hub()
    a = joined(hub, "news")
    assert clock.asked == [0.0]  # the first mark asks for a flush at once
    clock.flush(0.0)
    assert counts_in(a.take()) == [1]  # its own frame was the announcement: not repeated
    b = joined(hub, "news", now=1.0)
    assert clock.flush(1.0) is None
    assert counts_in(a.take()) == [2]
    assert counts_in(b.take()) == [2, 2]  # at subscribe, then the change
    b.disconnect()
    assert clock.flush(2.0) is None
    assert counts_in(a.take()) == [1]
    c = joined(hub, "news", now=3.0)
    c.disconnect()  # back where it was within one interval: nothing to say
    assert clock.flush(3.0) is None
    assert counts_in(a.take()) == []


@pytest.mark.parametrize(
    "channel", ["news", "private-x", "private-encrypted-x", "cache-x", "private-cache-x"]
)
def test_every_channel_type_but_presence_is_counted(channel: str) -> None:
    hub, _ = make_hub()
    assert counts_in(joined(hub, channel).take()) == [1]


def test_presence_channels_and_apps_without_the_option_get_no_count() -> None:
    hub, clock = make_hub()
    c = FakeClient(hub).connect()
    c.subscribe("presence-room", {"user_id": "u"})
    assert clock.flush(0.0) is None
    assert counts_in(c.take()) == []
    quiet, quiet_clock = make_hub(subscription_count=False)
    d = joined(quiet, "news")
    assert quiet_clock.asked == [] and counts_in(d.take()) == []
    assert quiet.flush_counts(0.0) is None


def test_a_thousand_joins_in_a_second_cost_a_few_events_and_keep_it_current() -> None:
    hub, clock = make_hub()
    clients: list[FakeClient] = []
    flushes = 0
    for i in range(1_000):
        now = i / 1_000
        flushes += clock.run_until(now)
        clients.append(joined(hub, "busy", now=now))
    flushes += clock.run_until(10.0)  # the last change is announced after the burst
    assert clock.at is None
    seen = counts_in(clients[0].take())
    assert seen[:2] == [1, 100]  # its own, then the first announcement to everyone
    broadcasts = seen[1:]
    # Each waits the interval its size set (0.1 s per 100): ~0.1, 0.2, 0.4, 0.8 s, then the
    # final count once the burst is over. A channel growing this fast still gets news.
    assert 4 <= len(broadcasts) <= 10
    assert broadcasts == sorted(broadcasts) and broadcasts[-1] == 1_000
    assert broadcasts[-2] >= 500 and flushes <= 3 * len(broadcasts)
    frames = sum(len(counts_in(c.take())) for c in clients) - 1_000  # minus one each at join
    assert frames <= 2 * 1_000 + 1_000  # ~2x FRAMES_PER_SECOND while doubling, then the last


def test_intervals_grow_with_the_subscribers_on_this_node() -> None:
    assert event_interval(1) == MIN_INTERVAL
    assert event_interval(100) == MIN_INTERVAL
    assert event_interval(2_000) == pytest.approx(2.0)
    assert event_interval(1_000_000) == MAX_INTERVAL
    feed = CountFeed()
    assert feed.mark("c") is True and feed.mark("d") is False
    due, wait = feed.take_due(0.0, lambda name: 5, lambda name, n: 2.0)
    assert sorted(due) == [("c", 5), ("d", 5)] and wait is None
    feed.mark("c")
    due, wait = feed.take_due(0.5, lambda name: 6, lambda name, n: 1.0)
    assert due == [] and wait == pytest.approx(1.5)  # the interval set when announcing
    due, wait = feed.take_due(2.0, lambda name: 6, lambda name, n: 2.0)
    assert due == [("c", 6)] and wait is None
    feed.sweep(2.0 + MAX_INTERVAL)
    assert feed.announced == {}


def test_the_webhook_is_opt_in_and_throttled_on_busy_channels() -> None:
    urls = ("http://127.0.0.1:1/hooks",)
    listed, clock = make_hub(
        webhook_urls=urls,
        webhook_events=frozenset({"subscription_count"}),
        subscription_count=False,
    )
    hooks: list[dict[str, Any]] = []
    listed.webhook = hooks.append
    a = joined(listed, "news")
    clock.flush(0.0)
    assert hooks == [{"name": "subscription_count", "channel": "news", "subscription_count": 1}]
    assert counts_in(a.take()) == []  # the webhook does not need the client events
    a.disconnect()
    clock.flush(1.0)
    assert hooks[-1]["subscription_count"] == 0
    everything, _ = make_hub(webhook_urls=urls)  # all events, but not the opt-in one
    assert everything.count_hooks is None
    hooks.clear()
    for _ in range(BUSY_CHANNEL + 1):
        joined(listed, "big", now=2.0)
    clock.flush(2.0)
    joined(listed, "big", now=3.0)
    assert clock.flush(3.0) == pytest.approx(MAX_INTERVAL - 1.0)  # busy: once per 5 s
    clock.flush(2.0 + MAX_INTERVAL)
    assert [h["subscription_count"] for h in hooks] == [BUSY_CHANNEL + 1, BUSY_CHANNEL + 2]


def test_a_client_cannot_send_the_count_event_itself() -> None:
    hub, _ = make_hub()
    a, b = joined(hub, "private-x"), joined(hub, "private-x")
    a.take(), b.take()
    a.send({"event": COUNT, "channel": "private-x", "data": '{"subscription_count":999}'})
    [err] = a.take()
    assert err["event"] == "pusher:error"
    assert "reserved for the server" in err["data"]["message"]
    assert b.take() == []
    assert a.closed_with is None
