"""Per-channel history (protocol.md §8): offsets, recovery windows and the three bounds."""

from __future__ import annotations

from collections.abc import Callable
from itertools import count

import orjson
import pytest

from overtone.channels.history import (
    ENTRY_OVERHEAD,
    HEADER_KEEP,
    History,
    HistoryBudget,
    HistoryLimits,
    Position,
    event_fields,
    parse_position,
    with_offset,
)

BIG = 10**9


def epochs(prefix: str = "e") -> Callable[[], str]:
    """Predictable epochs: ``e1``, ``e2``, ..."""
    ids = count(1)
    return lambda: f"{prefix}{next(ids)}"


def make(
    max_events: int = 100,
    ttl: float = 300.0,
    memory: int = BIG,
    budget: HistoryBudget | None = None,
    prefix: str = "e",
) -> History:
    return History(
        HistoryLimits(max_events=max_events, ttl=ttl),
        budget if budget is not None else HistoryBudget(memory),
        epochs(prefix),
    )


def event(data: str, channel: str = "c") -> bytes:
    return orjson.dumps({"event": "e", "channel": channel, "data": data})


def publish(history: History, channel: str, n: int, now: float = 0.0) -> list[bytes]:
    """Publish ``n`` events (data ``"1"``..) and return the stored payloads."""
    first = history.stream(channel, now).offset + 1
    return [history.append(channel, event(str(i), channel), now) for i in range(first, first + n)]


def offsets(payloads: list[bytes] | None) -> list[int] | None:
    if payloads is None:
        return None
    return [orjson.loads(p)["offset"] for p in payloads]


def cost(payload: bytes) -> int:
    """What one stored payload is charged against the node budget."""
    return len(payload) + ENTRY_OVERHEAD


def held_bytes(*histories: History) -> int:
    return sum(cost(e[2]) for h in histories for s in h for e in s.entries)


# -- offsets and positions ----------------------------------------------------------------


def test_with_offset_appends_the_field_to_the_encoded_object() -> None:
    spliced = with_offset(event("x"), 42)
    assert spliced == b'{"event":"e","channel":"c","data":"x","offset":42}'
    assert orjson.loads(spliced) == {"event": "e", "channel": "c", "data": "x", "offset": 42}


def test_a_new_stream_stands_at_offset_zero_in_a_fresh_epoch() -> None:
    history = make()
    assert history.position("a", 0) == Position("e1", 0)
    assert history.position("a", 0) == Position("e1", 0)
    assert history.position("b", 0) == Position("e2", 0)
    assert len(history) == 2
    assert Position("e1", 3).to_wire() == {"epoch": "e1", "offset": 3}


def test_offsets_grow_by_one_from_one_per_channel() -> None:
    history = make()
    stored = publish(history, "a", 3)
    assert [orjson.loads(p) for p in stored] == [
        {"event": "e", "channel": "a", "data": str(i), "offset": i} for i in (1, 2, 3)
    ]
    assert offsets(publish(history, "b", 2)) == [1, 2]
    assert offsets(publish(history, "a", 1)) == [4]
    assert history.position("a", 0) == Position("e1", 4)
    assert history.position("b", 0) == Position("e2", 2)


# -- since ------------------------------------------------------------------------------


def test_since_returns_exactly_the_events_after_an_offset() -> None:
    history = make()
    stored = publish(history, "c", 5)
    for k in range(6):
        assert history.since("c", Position("e1", k), 1.0) == stored[k:]
    assert history.since("c", Position("e1", 5), 1.0) == []


@pytest.mark.parametrize(
    "position",
    [
        Position("other", 1),  # another epoch
        Position("e1", 4),  # beyond the stream
        Position("e1", -1),  # negative (never accepted from a client, refused anyway)
    ],
)
def test_since_refuses_what_it_cannot_answer(position: Position) -> None:
    history = make()
    publish(history, "c", 3)
    assert history.since("c", position, 0) is None


def test_since_on_an_unknown_channel_is_none_and_creates_nothing() -> None:
    history = make()
    assert history.since("nope", Position("e1", 0), 0) is None
    assert len(history) == 0


def test_since_an_up_to_date_position_is_empty_even_when_everything_expired() -> None:
    history = make(ttl=10)
    publish(history, "c", 2, now=0)
    assert history.since("c", Position("e1", 2), 1_000) == []


def test_max_events_evicts_the_oldest() -> None:
    history = make(max_events=3)
    stored = publish(history, "c", 5)
    assert [e[0] for e in history.streams["c"].entries] == [3, 4, 5]
    assert history.since("c", Position("e1", 0), 0) is None
    assert history.since("c", Position("e1", 1), 0) is None
    assert history.since("c", Position("e1", 2), 0) == stored[2:]
    assert history.since("c", Position("e1", 4), 0) == stored[4:]
    assert history.budget.used == held_bytes(history)


def test_ttl_expires_events_at_exactly_ttl_seconds() -> None:
    history = make(ttl=10)
    [first] = publish(history, "c", 1, now=0)
    [second] = publish(history, "c", 1, now=5)
    assert history.since("c", Position("e1", 0), 9.9) == [first, second]
    assert history.since("c", Position("e1", 0), 10) is None
    assert history.since("c", Position("e1", 1), 10) == [second]
    assert history.since("c", Position("e1", 1), 15) is None
    assert history.since("c", Position("e1", 2), 15) == []
    assert history.position("c", 15) == Position("e1", 2)  # the header stays
    assert history.budget.used == 0


def test_held_lists_offsets_and_payloads_and_expires() -> None:
    history = make(ttl=10)
    a = publish(history, "c", 2, now=0)
    b = publish(history, "c", 1, now=6)
    assert history.held("c", 1) == [(1, a[0]), (2, a[1]), (3, b[0])]
    assert history.held("c", 10) == [(3, b[0])]
    assert history.held("unknown", 10) == []


def test_event_fields_of_a_stored_payload() -> None:
    [stored] = publish(make(), "c", 1)
    assert event_fields(stored) == {"offset": 1, "event": "e", "data": "1"}


# -- the node-wide memory budget ------------------------------------------------------------


def test_memory_budget_evicts_the_oldest_across_apps_sharing_it() -> None:
    size = cost(with_offset(event("1", "a"), 1))  # every event below costs the same
    budget = HistoryBudget(3 * size)
    one, two = make(budget=budget, prefix="x"), make(budget=budget, prefix="y")
    [a1] = publish(one, "a", 1)
    [b1] = publish(two, "a", 1)
    [a2] = publish(one, "a", 1)
    assert budget.used == 3 * size
    assert one.since("a", Position("x1", 0), 0) == [a1, a2]
    [b2] = publish(two, "a", 1)  # over the cap: a1, the oldest, goes
    assert budget.used == 3 * size == held_bytes(one, two)
    assert one.since("a", Position("x1", 0), 0) is None
    assert one.since("a", Position("x1", 1), 0) == [a2]
    assert two.since("a", Position("y1", 0), 0) == [b1, b2]
    [a3] = publish(one, "a", 1)  # then b1
    assert two.since("a", Position("y1", 0), 0) is None
    assert two.since("a", Position("y1", 1), 0) == [b2]
    assert one.since("a", Position("x1", 1), 0) == [a2, a3]
    assert budget.used == held_bytes(one, two)


def test_memory_budget_counts_offsets_and_overhead() -> None:
    history = make()
    stored = publish(history, "c", 12)
    assert history.budget.used == sum(len(p) + ENTRY_OVERHEAD for p in stored)


def test_an_event_larger_than_the_budget_is_not_kept_but_takes_its_offset() -> None:
    history = make(memory=ENTRY_OVERHEAD + 10)
    stored = publish(history, "c", 2)
    assert offsets(stored) == [1, 2]
    assert history.budget.used == 0
    assert history.position("c", 0) == Position("e1", 2)
    assert history.since("c", Position("e1", 1), 0) is None
    assert history.since("c", Position("e1", 2), 0) == []


def test_budget_used_returns_to_zero_when_everything_leaves() -> None:
    budget = HistoryBudget(BIG)
    one, two = make(ttl=10, budget=budget), make(budget=budget)
    publish(one, "a", 5)
    publish(one, "b", 5)
    publish(two, "a", 5)
    two.forget("a")
    assert budget.used == held_bytes(one)
    one.sweep(10, lambda _: True)
    assert budget.used == 0
    publish(one, "a", 3, now=20)
    one.clear()
    assert budget.used == 0


def test_budget_bookkeeping_stays_bounded_over_many_publishes_and_sweeps() -> None:
    history = make(max_events=10, ttl=30)
    budget = history.budget
    for step in range(2_000):
        now = step * 0.1
        channel = f"c{step % 7}"
        history.append(channel, event(str(step), channel), now)
        if step % 50 == 0:
            history.sweep(now, lambda _: False)
            assert len(budget._order) <= 7 * 10 + 50
            assert budget.used == held_bytes(history)
    history.sweep(1_000, lambda _: False)
    assert budget.used == 0
    assert len(budget._order) == 0


# -- positions assigned elsewhere ---------------------------------------------------------


def test_record_appends_in_order_and_ignores_duplicates_and_old_ones() -> None:
    history = make()
    p = {n: with_offset(event(str(n)), n) for n in range(1, 12)}
    assert history.record("c", "X", 5, p[5], 0) is True
    assert history.position("c", 0) == Position("X", 5)
    assert history.since("c", Position("X", 4), 0) == [p[5]]
    assert history.since("c", Position("X", 3), 0) is None  # never held here
    assert history.record("c", "X", 6, p[6], 0) is True
    assert history.record("c", "X", 6, p[6], 0) is False  # duplicate
    assert history.record("c", "X", 2, p[2], 0) is False  # old
    assert history.since("c", Position("X", 4), 0) == [p[5], p[6]]
    assert history.budget.used == cost(p[5]) + cost(p[6])


def test_record_restarts_on_a_gap_or_a_new_epoch() -> None:
    history = make()
    p = {n: with_offset(event(str(n)), n) for n in range(1, 12)}
    for n in (1, 2, 3):
        history.record("c", "X", n, p[n], 0)
    assert history.record("c", "X", 5, p[5], 0) is True  # 4 is missing: restart at 5
    assert history.position("c", 0) == Position("X", 5)
    assert history.since("c", Position("X", 3), 0) is None
    assert history.since("c", Position("X", 4), 0) == [p[5]]
    assert history.budget.used == cost(p[5])
    assert history.record("c", "Y", 1, p[1], 0) is True  # a new epoch
    assert history.position("c", 0) == Position("Y", 1)
    assert history.since("c", Position("X", 5), 0) is None
    assert history.since("c", Position("Y", 0), 0) == [p[1]]
    assert history.budget.used == cost(p[1])


def test_record_respects_max_events() -> None:
    history = make(max_events=2)
    p = {n: with_offset(event(str(n)), n) for n in range(1, 5)}
    for n in (1, 2, 3, 4):
        history.record("c", "X", n, p[n], 0)
    assert history.since("c", Position("X", 2), 0) == [p[3], p[4]]
    assert history.since("c", Position("X", 1), 0) is None


def test_forget_and_clear_start_new_epochs() -> None:
    history = make()
    publish(history, "a", 2)
    publish(history, "b", 2)
    history.forget("a")
    history.forget("never-seen")
    assert history.position("a", 0) == Position("e3", 0)
    assert history.since("a", Position("e1", 2), 0) is None
    history.clear()
    assert len(history) == 0
    assert history.budget.used == 0
    assert history.position("a", 0) == Position("e4", 0)
    assert history.position("b", 0) == Position("e5", 0)


def test_sweep_drops_idle_headers_of_unoccupied_channels_only() -> None:
    history = make(ttl=10)
    publish(history, "idle", 1, now=0)
    publish(history, "watched", 1, now=0)
    history.sweep(HEADER_KEEP, lambda _: False)  # not *older* than HEADER_KEEP yet
    assert set(history.streams) == {"idle", "watched"}
    history.sweep(HEADER_KEEP + 1, lambda name: name == "watched")
    assert set(history.streams) == {"watched"}
    assert history.budget.used == 0
    assert history.position("idle", HEADER_KEEP + 1) == Position("e3", 0)


def test_sweep_counts_from_the_last_use() -> None:
    history = make(ttl=10)
    publish(history, "read", 1, now=0)
    publish(history, "asked", 1, now=0)
    publish(history, "cold", 1, now=0)
    history.since("read", Position("e1", 0), 100)  # a recovery attempt is a use
    history.position("asked", 200)
    history.since("cold", Position("other", 0), 300)  # another epoch: not a use
    history.sweep(HEADER_KEEP + 50, lambda _: False)
    assert set(history.streams) == {"read", "asked"}
    history.sweep(HEADER_KEEP + 150, lambda _: False)
    assert set(history.streams) == {"asked"}


def test_sweep_keeps_headers_at_least_as_long_as_events() -> None:
    ttl = 2 * HEADER_KEEP
    history = make(ttl=ttl)
    [stored] = publish(history, "c", 1, now=0)
    history.sweep(HEADER_KEEP + 1, lambda _: False)
    assert history.held("c", HEADER_KEEP + 1) == [(1, stored)]
    history.sweep(ttl, lambda _: False)  # the event expired, the header is not *older*
    assert "c" in history.streams
    history.sweep(ttl + 1, lambda _: True)  # occupied: kept
    assert "c" in history.streams
    history.sweep(ttl + 1, lambda _: False)
    assert "c" not in history.streams


# -- parsing a client's position ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"epoch": "E", "offset": 0}, Position("E", 0)),
        ({"epoch": "E", "offset": 17, "extra": 1}, Position("E", 17)),
        ({"epoch": "", "offset": 3}, Position("", 3)),
        ({"epoch": "E", "offset": -1}, None),
        ({"epoch": "E", "offset": 1.0}, None),
        ({"epoch": "E", "offset": True}, None),
        ({"epoch": "E", "offset": False}, None),
        ({"epoch": "E", "offset": "3"}, None),
        ({"epoch": "E", "offset": None}, None),
        ({"epoch": "E"}, None),
        ({"offset": 3}, None),
        ({"epoch": 3, "offset": 3}, None),
        ({"epoch": None, "offset": 3}, None),
        ({}, None),
        ([["epoch", "E"], ["offset", 1]], None),
        ("E:3", None),
        (None, None),
        (3, None),
    ],
)
def test_parse_position(value: object, expected: Position | None) -> None:
    assert parse_position(value) == expected
