"""Memory that history holds stays under the node-wide cap (OVERTONE_HISTORY_MEMORY).

1. The budget's eviction order keeps one record per stored event; records of events that
   left by count or age are compacted away, so one quiet channel holding an old event does
   not pin the records of everything published since.
2. Stream headers count against the cap: past it, the least recently used headers of
   channels nobody subscribes to are dropped at the next sweep.
"""

from __future__ import annotations

import sys
from itertools import count

import orjson

from overtone.apps import App
from overtone.channels.history import History, HistoryBudget, HistoryLimits
from overtone.hub import Hub
from support.fakes import FakeClient


def test_budget_order_records_stay_bounded_while_one_old_event_is_held() -> None:
    budget = HistoryBudget(65_536)
    ids = count(1)
    history = History(HistoryLimits(max_events=10, ttl=300), budget, lambda: f"e{next(ids)}")
    history.append("quiet", orjson.dumps({"event": "e", "channel": "quiet", "data": ""}), 0)
    payload = orjson.dumps({"event": "e", "channel": "busy", "data": ""})
    for step in range(20_000):  # 100 events a second for 200 s, swept every 5 s
        now = step * 0.01
        history.append("busy", payload, now)
        if step % 500 == 0:
            history.sweep(now, lambda _: False)
    history.sweep(200, lambda _: False)
    held = sum(len(stream.entries) for stream in history)
    assert held == 11
    assert len(budget._order) <= 2 * held + 500


def test_stream_headers_count_against_the_node_cap() -> None:
    ids = count(1)
    budget = HistoryBudget(65_536)
    hub = Hub(App(id="1", key="k", secret="s"), lambda: f"{next(ids)}.1", 30, budget)
    c = FakeClient(hub).connect()
    for i in range(2_000):
        c.subscribe(f"room-{i}")
        c.send({"event": "pusher:unsubscribe", "data": {"channel": f"room-{i}"}})
    hub.tick(60)
    assert not hub.channels
    assert hub.history is not None
    headers = sum(
        sys.getsizeof(s) + sys.getsizeof(s.entries) + sys.getsizeof(s.name) + len(s.epoch)
        for s in hub.history
    )
    assert headers <= budget.max_bytes
