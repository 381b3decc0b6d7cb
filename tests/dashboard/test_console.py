"""The debug console: entries in the documented shape, bounded in rate, routed to feeds."""

from __future__ import annotations

from overtone.dashboard.console import DATA_LIMIT, Console


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_has_every_documented_field() -> None:
    console = Console("node-a", clock=Clock())
    console.to_feeds = True
    console.tracer("app1")("api_event", {"channel": "news", "event": "hi", "data": '{"a":1}'})
    [entry] = console.take()
    assert entry == {
        "seq": 1,
        "t": 1000.0,
        "app": "app1",
        "node": "node-a",
        "kind": "api_event",
        "socket_id": None,
        "channel": "news",
        "event": "hi",
        "user_id": None,
        "code": None,
        "message": None,
        "data": '{"a":1}',
    }
    assert console.take() == []


def test_data_is_cut_and_non_strings_are_shown_as_json() -> None:
    console = Console("n", clock=Clock())
    console.to_feeds = True
    console.add("a", "client_event", {"data": "x" * (DATA_LIMIT + 50)})
    console.add("a", "client_event", {"data": {"k": [1, 2]}})
    long, structured = console.take()
    assert long["data"] == "x" * DATA_LIMIT + "…"
    assert structured["data"] == '{"k":[1,2]}'


def test_at_most_rate_entries_a_second_the_rest_are_counted() -> None:
    clock = Clock()
    console = Console("n", rate=10, clock=clock)
    console.to_feeds = True
    for _ in range(25):
        console.add("a", "connected", {"socket_id": "1.1"})
    assert len(console.take()) == 10
    assert console.dropped == 15
    clock.now += 1
    console.add("a", "connected", {})
    assert [e["seq"] for e in console.take()] == [11]


def test_entries_go_only_where_someone_watches() -> None:
    console = Console("n", keep=3, clock=Clock())
    console.add("a", "connected", {})
    assert console.take() == [] and console.take_outbox() == []
    console.to_cluster = True
    console.add("a", "signin", {"user_id": "7"})
    assert [e["kind"] for e in console.take_outbox()] == ["signin"]
    assert console.take() == []
    for _ in range(5):
        console.add("a", "connected", {})
    assert len(console.recent) == 3  # what a feed opened later is shown


def test_entries_from_other_nodes_are_checked() -> None:
    console = Console("n", clock=Clock())
    console.to_feeds = True
    console.receive([{"kind": "subscribed", "node": "b"}, {"kind": "bogus"}, "junk", 5])
    console.receive("not a list")
    assert [e["node"] for e in console.take()] == ["b"]
