"""History across nodes (in-process bus as the shared store; tests/cluster/test_redis_history.py
repeats the essentials on a real Redis): one position for every node, recovery anywhere,
and a new epoch instead of a silent gap after an outage."""

from __future__ import annotations

import json
import time
from typing import Any

from overtone.cluster.coordinator import Coordinator
from overtone.cluster.sequencer import MemorySequencer
from overtone.http.api import Api
from overtone.routing import Response, Stream
from support.cluster import HISTORY_APP, Bus, hub_of
from support.fakes import FakeClient
from support.signing import signed_target


def node(bus: Bus, name: str) -> Coordinator:
    return bus.add(name, HISTORY_APP)


def subscriber(bus: Bus, at: Coordinator, channel: str, **extra: Any) -> FakeClient:
    client = FakeClient(hub_of(at), now=bus.now).connect()
    client.take()
    client.subscribe(channel, **extra)
    bus.pump()
    return client


def publish(bus: Bus, at: Coordinator, channel: str, *names: str) -> None:
    for name in names:
        hub_of(at).publish(name, [channel], name, None, bus.now)
    bus.pump()


def succeeded(client: FakeClient) -> dict[str, Any]:
    first = client.sent.pop(0)
    assert first["event"] == "pusher_internal:subscription_succeeded", first
    return first


def events(client: FakeClient) -> list[tuple[str, int]]:
    return [(m["event"], m["offset"]) for m in client.take()]


def answer_once_loaded(answer: Response) -> Response:
    """A deferred HTTP answer, completed as the transport does once its stream is loaded (the
    bus loads at once)."""
    pending = answer.pending
    assert pending is not None
    ready: list[Response | Stream] = []
    pending.wait(lambda: ready.append(pending.answer()))
    [final] = ready
    assert isinstance(final, Response)
    return final


def test_every_node_gives_the_same_offsets_and_position() -> None:
    bus = Bus()
    a, b = node(bus, "a"), node(bus, "b")
    x, y = subscriber(bus, a, "news"), subscriber(bus, b, "news")
    assert succeeded(x)["position"] == succeeded(y)["position"]
    publish(bus, a, "news", "one")
    publish(bus, b, "news", "two")
    assert events(x) == events(y) == [("one", 1), ("two", 2)]
    late = subscriber(bus, a, "news")
    position = succeeded(late)["position"]
    assert position["offset"] == 2
    assert succeeded(subscriber(bus, b, "news"))["position"] == position


def test_a_client_recovers_on_another_node() -> None:
    bus = Bus()
    a, b = node(bus, "a"), node(bus, "b")
    x = subscriber(bus, a, "news")
    epoch = succeeded(x)["position"]["epoch"]
    publish(bus, b, "news", "one")
    assert events(x) == [("one", 1)]
    x.disconnect()
    publish(bus, a, "news", "two", "three")
    back = subscriber(bus, b, "news", recover={"epoch": epoch, "offset": 1})
    answer = succeeded(back)
    assert answer["recovered"] is True
    assert answer["position"] == {"epoch": epoch, "offset": 3}
    assert events(back) == [("two", 2), ("three", 3)]
    publish(bus, a, "news", "four")
    assert events(back) == [("four", 4)]


def test_a_node_that_joins_later_reads_the_stream_from_the_store() -> None:
    bus = Bus()
    a = node(bus, "a")
    x = subscriber(bus, a, "news")
    epoch = succeeded(x)["position"]["epoch"]
    publish(bus, a, "news", "one", "two")
    x.take()
    c = node(bus, "c")  # never saw these events
    back = subscriber(bus, c, "news", recover={"epoch": epoch, "offset": 0})
    assert succeeded(back)["recovered"] is True
    assert events(back) == [("one", 1), ("two", 2)]
    fresh = subscriber(bus, c, "other")
    assert succeeded(fresh)["position"]["offset"] == 0


def test_an_outage_changes_the_epoch_instead_of_leaving_a_gap() -> None:
    bus = Bus()
    a, b = node(bus, "a"), node(bus, "b")
    x, y = subscriber(bus, a, "news"), subscriber(bus, b, "news")
    epoch = succeeded(x)["position"]["epoch"]
    succeeded(y)
    publish(bus, a, "news", "one")
    assert events(y) == [("one", 1)]
    bus.up = False
    hub_of(a).publish("local", ["news"], "only here", None, bus.now)
    assert [m["event"] for m in x.take()] == ["one", "local"]  # delivered, without offset
    assert y.take() == []  # the other node never sees it
    bus.up = True
    a.connected(bus.now)
    b.connected(bus.now)
    bus.pump()
    y.disconnect()
    again = subscriber(bus, b, "news", recover={"epoch": epoch, "offset": 1})
    answer = succeeded(again)
    assert answer["recovered"] is False
    assert answer["position"]["epoch"] != epoch
    assert again.take() == []


def test_a_node_back_from_its_own_outage_catches_its_subscribers_up() -> None:
    bus = Bus()
    a, b = node(bus, "a"), node(bus, "b")
    x, y = subscriber(bus, a, "news"), subscriber(bus, b, "news")
    succeeded(x)
    succeeded(y)
    publish(bus, a, "news", "one")
    assert events(x) == events(y) == [("one", 1)]
    bus.cut.add("b")  # only b's link is down: a's events are numbered and stored
    publish(bus, a, "news", "two", "three")
    assert events(x) == [("two", 2), ("three", 3)]
    assert y.take() == []
    bus.cut.discard("b")
    b.connected(bus.now)
    bus.pump()
    # What y missed arrives as it would have live: in order, nothing else, nothing twice.
    assert events(y) == [("two", 2), ("three", 3)]
    publish(bus, a, "news", "four")
    assert events(x) == events(y) == [("four", 4)]
    assert hub_of(b).stats.recovered == 1 and hub_of(b).stats.resynced == 0


def test_subscribers_are_told_to_reload_when_events_reached_another_node_only() -> None:
    bus = Bus()
    a, b = node(bus, "a"), node(bus, "b")
    x, y = subscriber(bus, a, "news"), subscriber(bus, b, "news")
    epoch = succeeded(x)["position"]["epoch"]
    succeeded(y)
    bus.cut.add("a")
    hub_of(a).publish("local", ["news"], "only on a", None, bus.now)
    assert [m["event"] for m in x.take()] == ["local"]
    bus.pump()
    assert y.take() == []
    bus.cut.discard("a")
    a.connected(bus.now)
    bus.pump()
    [told] = y.take()
    assert told["event"] == "pusher_internal:subscription_succeeded"
    assert told["recovered"] is False and told["position"]["epoch"] != epoch
    publish(bus, a, "news", "after")
    assert events(y) == [("after", told["position"]["offset"] + 1)]
    assert hub_of(b).stats.resynced == 1


def test_an_empty_store_after_a_restart_resyncs_connected_subscribers() -> None:
    bus = Bus()
    a = node(bus, "a")
    x = subscriber(bus, a, "presence-room", user={"user_id": "u1", "user_info": {"n": 1}})
    epoch = succeeded(x)["position"]["epoch"]
    publish(bus, a, "presence-room", "one")
    x.take()
    bus.up = False
    bus.sequencer = MemorySequencer()  # the store came back empty
    bus.up = True
    a.connected(bus.now)
    bus.pump()
    [told] = x.take()
    assert told["recovered"] is False and told["position"]["epoch"] != epoch
    assert json.loads(told["data"])["presence"]["ids"] == ["u1"]  # pusher-js resets members


def test_positions_over_http_wait_for_the_store() -> None:
    bus = Bus()
    a, b = node(bus, "a"), node(bus, "b")
    publish(bus, a, "news", "one", "two")
    api = Api(b.node)
    target = signed_target(
        "GET", "/apps/1/channels/news", params={"info": "position"}, key="key", secret="secret"
    )
    hub = hub_of(b)
    hub.history.clear()  # type: ignore[union-attr]  # b follows nothing
    final = answer_once_loaded(api.handle("GET", target, b"", bus.now, time.time()))
    assert final.status == 200
    assert json.loads(final.body)["position"]["offset"] == 2
    followed = api.handle("GET", target, b"", bus.now, time.time())
    assert followed.pending is None and json.loads(followed.body)["position"]["offset"] == 2


def test_history_api_answers_503_when_the_store_is_unreachable() -> None:
    bus = Bus()
    a = node(bus, "a")
    api = Api(a.node)
    bus.up = False
    target = signed_target(
        "GET", "/apps/1/channels/news/history", params={"since": "0"}, key="key", secret="secret"
    )
    assert answer_once_loaded(api.handle("GET", target, b"", bus.now, time.time())).status == 503


def test_a_restart_announced_during_a_catch_up_read_is_read_again() -> None:
    bus = Bus()
    a, b = node(bus, "a"), node(bus, "b")
    y = subscriber(bus, b, "news")
    succeeded(y)
    publish(bus, a, "news", "one")
    y.take()
    hub = hub_of(b)
    reads: list[str] = []
    hub.load_stream = reads.append  # reads answered by hand below, as late as Redis may
    bus.cut.add("b")
    b.connected(bus.now)  # b is back: it reads "news" again for y
    assert reads == ["news"]
    old = bus.sequencer.stream("1", "news", 300, bus.now)
    # Before that read is answered, a restarts the stream (it published while cut off).
    bus.sequencer.sequence([], [("1", "news")], bus.now)
    hub.catch_up("news", None)  # what applying a's hreset does
    hub.stream_loaded("news", old, bus.now)  # the answer predates the restart
    assert reads == ["news", "news"] and y.take() == []  # read again, nothing said yet
    new = bus.sequencer.stream("1", "news", 300, bus.now)
    assert new.epoch != old.epoch
    hub.stream_loaded("news", new, bus.now)
    [told] = y.take()
    assert told["recovered"] is False and told["position"]["epoch"] == new.epoch
