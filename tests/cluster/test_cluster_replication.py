"""Replication costs per change of shared state, not per connection (in-process bus)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson

from overtone.cluster.coordinator import Coordinator
from support.cluster import APP, Bus, client_on, hub_of
from support.fakes import FakeClient, signin_data

HOOKED = replace(APP, webhook_urls=("http://127.0.0.1:1/hooks",))


def messages_of(bus: Bus, coordinator: Coordinator) -> list[dict[str, Any]]:
    """Flush ``coordinator``, deliver the envelope to every node; the messages in it."""
    outgoing = coordinator.flush()
    if outgoing is None:
        return []
    for receiver in bus.nodes:
        receiver.receive(outgoing.envelope, bus.now)
    return [message for _, message in orjson.loads(outgoing.envelope)["m"]]


def hooked_pair() -> tuple[Bus, Coordinator, Coordinator, list[tuple[str, str, str]]]:
    bus = Bus()
    a, b = bus.add("a", HOOKED), bus.add("b", HOOKED)
    sent: list[tuple[str, str, str]] = []
    for name, node in (("a", a), ("b", b)):
        hub_of(node).webhook = lambda event, name=name: sent.append(
            (name, str(event["name"]), str(event["channel"]))
        )
    return bus, a, b, sent


def test_a_burst_of_subscriptions_is_one_small_message() -> None:
    bus = Bus()
    a, b = bus.add("a"), bus.add("b")
    clients = [FakeClient(hub_of(a), now=bus.now).connect() for _ in range(10_000)]
    for client in clients:
        client.subscribe("stadium")
    outgoing = a.flush()
    assert outgoing is not None
    assert len(outgoing.envelope) < 120, outgoing.envelope
    assert [m for _, m in orjson.loads(outgoing.envelope)["m"]] == [
        {"t": "conn", "d": 10_000},
        {"t": "subs", "c": {"stadium": 10_000}},
    ]
    for receiver in bus.nodes:
        receiver.receive(outgoing.envelope, bus.now)
    remote = hub_of(b).remote
    assert (remote.connections, remote.subscription_count("stadium")) == (10_000, 10_000)
    for client in clients[:4_000]:
        client.disconnect()
    bus.pump()
    assert hub_of(b).connection_count() == 6_000
    assert hub_of(b).subscription_count("stadium") == 6_000


def test_only_changes_of_shared_state_are_sent() -> None:
    bus = Bus()
    a = bus.add("a")
    bus.add("b")
    x, y = (FakeClient(hub_of(a), now=bus.now).connect() for _ in range(2))
    x.subscribe("news")
    x.send({"event": "pusher:unsubscribe", "data": {"channel": "news"}})
    y.subscribe("sports")
    # news came and went within the batch: nothing changed for anyone (and the app has no
    # occupancy webhooks that would need to know it was occupied for a moment).
    assert messages_of(bus, a) == [{"t": "conn", "d": 2}, {"t": "subs", "c": {"sports": 1}}]


def test_presence_is_sent_per_user_not_per_connection() -> None:
    bus = Bus()
    a, b = bus.add("a"), bus.add("b")
    tabs = [FakeClient(hub_of(a), now=bus.now).connect() for _ in range(3)]
    for tab in tabs:
        tab.subscribe("presence-room", {"user_id": "ana", "user_info": {"n": 1}})
    joins = [m for m in messages_of(bus, a) if m["t"] in ("join", "leave")]
    assert joins == [{"t": "join", "c": "presence-room", "u": "ana", "i": {"n": 1}}]
    bus.pump()
    watcher = client_on(bus, b)
    watcher.subscribe("presence-room", {"user_id": "w"})
    watcher.take()
    bus.pump()
    tabs[0].disconnect()
    tabs[1].disconnect()
    assert [m for m in messages_of(bus, a) if m["t"] in ("join", "leave")] == []
    bus.pump()
    assert watcher.take() == []
    tabs[2].disconnect()
    bus.pump()
    assert watcher.take() == [
        {
            "event": "pusher_internal:member_removed",
            "channel": "presence-room",
            "data": {"user_id": "ana"},
        }
    ]
    assert hub_of(b).user_ids("presence-room") == ["w"]


def test_sign_ins_are_sent_on_a_users_first_and_last_connection() -> None:
    bus = Bus()
    a = bus.add("a")
    bus.add("b")
    hub = hub_of(a)
    sessions = []
    for _ in range(2):
        client = FakeClient(hub, now=bus.now).connect()
        client.send(
            {"event": "pusher:signin", "data": signin_data(hub, client.socket_id, {"id": "7"})}
        )
        sessions.append(client)
    assert [m["t"] for m in messages_of(bus, a) if m["t"] in ("in", "out")] == ["in"]
    sessions[0].disconnect()
    assert [m["t"] for m in messages_of(bus, a) if m["t"] in ("in", "out")] == []
    sessions[1].disconnect()
    assert [m["t"] for m in messages_of(bus, a) if m["t"] in ("in", "out")] == ["out"]


def test_a_channel_occupied_and_vacated_within_one_batch_gets_both_webhooks_once() -> None:
    bus, a, _, sent = hooked_pair()
    x = FakeClient(hub_of(a), now=bus.now).connect()
    x.subscribe("flash")
    x.send({"event": "pusher:unsubscribe", "data": {"channel": "flash"}})
    outgoing = a.flush()
    assert outgoing is not None
    assert {"t": "subs", "c": {"flash": [0, 0, 1]}} in [
        m for _, m in orjson.loads(outgoing.envelope)["m"]
    ]
    for receiver in bus.nodes:
        receiver.receive(outgoing.envelope, bus.now)
    assert sent == [("a", "channel_occupied", "flash"), ("a", "channel_vacated", "flash")]


def test_vacated_and_occupied_again_within_one_batch() -> None:
    bus, a, b, sent = hooked_pair()
    x = client_on(bus, a)
    x.subscribe("busy")
    bus.pump()
    assert sent == [("a", "channel_occupied", "busy")]
    sent.clear()
    x.send({"event": "pusher:unsubscribe", "data": {"channel": "busy"}})
    FakeClient(hub_of(a), now=bus.now).connect().subscribe("busy")
    bus.pump()
    assert sent == [("a", "channel_vacated", "busy"), ("a", "channel_occupied", "busy")]
    sent.clear()
    # With a subscriber on node b the count never reaches zero: no webhook.
    client_on(bus, b).subscribe("busy")
    bus.pump()
    for hub in (hub_of(a), hub_of(b)):
        assert hub.subscription_count("busy") == 2
    assert sent == []


def test_counts_alone_wait_for_the_window_but_events_do_not() -> None:
    bus = Bus()
    wakes: list[bool] = []
    a = bus.add("a")
    a._wake = wakes.append  # what the transport is told
    a.flush()
    FakeClient(hub_of(a), now=bus.now).connect().subscribe("news")
    assert wakes == [False]  # counts only: the transport may wait COUNT_WINDOW
    hub_of(a).publish("e", ["news"], "d", None, bus.now)
    assert wakes == [False, True]  # an event: flush on the next iteration
    a.flush()
    wakes.clear()
    FakeClient(hub_of(a), now=bus.now).connect().subscribe("presence-p", {"user_id": "u"})
    assert wakes == [False, True]  # a presence join goes out with the next flush too
