"""Recovery and ``toOthers()``: an event a connection was excluded from is not replayed to it
when it recovers on a new connection that names the old one (protocol.md §8 extension)."""

from __future__ import annotations

from itertools import count

from overtone.apps import App
from overtone.hub import Hub
from support.cluster import HISTORY_APP, Bus, hub_of
from support.fakes import FakeClient


def make_hub() -> Hub:
    ids = count(1)
    return Hub(App(id="1", key="key", secret="secret"), lambda: f"{next(ids)}.1", 30)


def test_the_event_a_client_triggered_for_others_is_skipped_not_replayed() -> None:
    hub = make_hub()
    a = FakeClient(hub).connect()
    a.subscribe("chat")
    epoch = a.take()[-1]["position"]["epoch"]
    hub.publish("line", ["chat"], "theirs", None, 0)
    hub.publish("line", ["chat"], "mine", a.socket_id, 0)  # toOthers(): not sent to a
    assert [(m["data"], m["offset"]) for m in a.take()] == [("theirs", 1)]
    old = a.socket_id
    a.disconnect()
    hub.publish("line", ["chat"], "later", None, 0)
    back = FakeClient(hub).connect()
    back.take()
    back.subscribe("chat", recover={"epoch": epoch, "offset": 1, "socket_id": old})
    answer, *replay = back.take()
    assert answer["recovered"] is True
    assert replay == [
        {"event": "pusher_internal:skipped", "channel": "chat", "data": "{}", "offset": 2},
        {"event": "line", "channel": "chat", "data": "later", "offset": 3},
    ]
    # Without naming the old connection the event is replayed like any other.
    other = FakeClient(hub).connect()
    other.take()
    other.subscribe("chat", recover={"epoch": epoch, "offset": 1})
    assert [m.get("data") for m in other.take()[1:]] == ["mine", "later"]


def test_exclusions_travel_with_the_stream_across_nodes() -> None:
    bus = Bus()
    a, b = bus.add("a", HISTORY_APP), bus.add("b", HISTORY_APP)
    x = FakeClient(hub_of(a), now=bus.now).connect()
    x.take()
    x.subscribe("chat")
    bus.pump()
    epoch = x.take()[-1]["position"]["epoch"]
    hub_of(b).publish("line", ["chat"], "mine", x.socket_id, bus.now)
    bus.pump()
    assert x.take() == []
    fresh = bus.add("c", HISTORY_APP)  # reads the stream, with its exclusions, from the store
    back = FakeClient(hub_of(fresh), now=bus.now).connect()
    back.take()
    back.subscribe("chat", recover={"epoch": epoch, "offset": 0, "socket_id": x.socket_id})
    bus.pump()
    assert [m["event"] for m in back.take()] == [
        "pusher_internal:subscription_succeeded",
        "pusher_internal:skipped",
    ]
