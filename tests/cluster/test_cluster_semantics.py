"""Three nodes behave as one server (in-process bus; the Redis tests repeat this for real)."""

from __future__ import annotations

import json
import time
from dataclasses import replace

from overtone.http.api import Api
from support.cluster import APP, Bus, client_on, hub_of
from support.fakes import FakeClient, signin_data
from support.signing import signed_target


def three() -> tuple[Bus, list[object]]:
    bus = Bus()
    return bus, [bus.add(name) for name in ("a", "b", "c")]


def test_published_events_reach_every_node_exactly_once_with_exclusion() -> None:
    bus = Bus()
    a, b, c = (bus.add(n) for n in "abc")
    clients = [client_on(bus, node) for node in (a, b, c, c)]
    for client in clients:
        client.subscribe("news")
        client.take()
    bus.pump()
    hub_of(a).publish("e", ["news"], "d", clients[3].socket_id, bus.now)
    bus.pump()
    got = [client.take() for client in clients]
    assert got[:3] == [[{"event": "e", "channel": "news", "data": "d"}]] * 3
    assert got[3] == []


def test_client_events_cross_nodes_without_echo() -> None:
    bus = Bus()
    a, b = bus.add("a"), bus.add("b")
    x, y = client_on(bus, a), client_on(bus, b)
    for client in (x, y):
        client.subscribe("private-chat")
        client.take()
    bus.pump()
    x.send({"event": "client-hi", "channel": "private-chat", "data": {"k": 1}})
    bus.pump()
    assert x.take() == []
    assert y.take() == [{"event": "client-hi", "channel": "private-chat", "data": {"k": 1}}]


def test_presence_is_cluster_wide_and_member_events_fire_once_per_user() -> None:
    bus = Bus()
    a, b, c = (bus.add(n) for n in "abc")
    watcher = client_on(bus, c)
    watcher.subscribe("presence-room", {"user_id": "w"})
    watcher.take()
    bus.pump()
    alice_a = client_on(bus, a)
    alice_a.subscribe("presence-room", {"user_id": "alice", "user_info": {"n": 1}})
    bus.pump()
    presence = json.loads(alice_a.take()[0]["data"])["presence"]
    assert sorted(presence["ids"]) == ["alice", "w"] and presence["count"] == 2
    assert watcher.take() == [
        {
            "event": "pusher_internal:member_added",
            "channel": "presence-room",
            "data": {"user_id": "alice", "user_info": {"n": 1}},
        }
    ]
    alice_b = client_on(bus, b)
    alice_b.subscribe("presence-room", {"user_id": "alice", "user_info": {"n": 1}})
    bus.pump()
    assert json.loads(alice_b.take()[0]["data"])["presence"]["count"] == 2
    assert watcher.take() == []  # second connection of alice, on another node
    for hub in map(hub_of, (a, b, c)):
        assert hub.user_count("presence-room") == 2
        assert hub.subscription_count("presence-room") == 3
        assert sorted(hub.user_ids("presence-room")) == ["alice", "w"]
    alice_a.disconnect()
    bus.pump()
    assert watcher.take() == []
    alice_b.disconnect()
    bus.pump()
    assert [m["event"] for m in watcher.take()] == ["pusher_internal:member_removed"]


def test_killed_node_disappears_from_counts_and_presence() -> None:
    bus = Bus()
    a, b = bus.add("a"), bus.add("b")
    watcher = client_on(bus, a)
    watcher.subscribe("presence-room", {"user_id": "w"})
    doomed = client_on(bus, b)
    doomed.subscribe("presence-room", {"user_id": "ghost"})
    bus.pump()
    watcher.take()
    assert hub_of(a).connection_count() == 2
    bus.kill(b)
    bus.advance(10)
    assert hub_of(a).user_count("presence-room") == 2  # within the timeout: still there
    bus.advance(10)
    assert hub_of(a).connection_count() == 1
    assert hub_of(a).user_ids("presence-room") == ["w"]
    assert watcher.take() == [
        {
            "event": "pusher_internal:member_removed",
            "channel": "presence-room",
            "data": {"user_id": "ghost"},
        }
    ]


def test_late_node_learns_state_and_cache() -> None:
    bus = Bus()
    a = bus.add("a")
    member = client_on(bus, a)
    member.subscribe("presence-x", {"user_id": "m"})
    hub_of(a).publish("last", ["cache-c"], "v", None, bus.now)
    bus.pump()
    b = bus.add("b")
    assert hub_of(b).user_ids("presence-x") == ["m"]
    assert hub_of(b).connection_count() == 1
    late = client_on(bus, b)
    late.subscribe("cache-c")
    assert late.take()[1] == {"event": "last", "channel": "cache-c", "data": "v"}


def test_terminate_and_server_to_user_reach_every_node() -> None:
    bus = Bus()
    a, b = bus.add("a"), bus.add("b")
    u = client_on(bus, b)
    u.send({"event": "pusher:signin", "data": signin_data(hub_of(b), u.socket_id, {"id": "u"})})
    u.subscribe("#server-to-user-u")
    u.take()
    bus.pump()
    hub_of(a).publish("dm", ["#server-to-user-u"], "hi", None, bus.now)
    bus.pump()
    assert u.take() == [{"event": "dm", "channel": "#server-to-user-u", "data": "hi"}]
    hub_of(a).terminate_user("u")
    bus.pump()
    assert u.closed_with is not None and u.closed_with[0] == 4009


def test_watchlist_is_cluster_wide() -> None:
    bus = Bus()
    a, b = bus.add("a"), bus.add("b")
    w = client_on(bus, a)
    w.send(
        {
            "event": "pusher:signin",
            "data": signin_data(hub_of(a), w.socket_id, {"id": "w", "watchlist": ["friend"]}),
        }
    )
    w.take()
    bus.pump()
    f = client_on(bus, b)
    f.send(
        {"event": "pusher:signin", "data": signin_data(hub_of(b), f.socket_id, {"id": "friend"})}
    )
    bus.pump()
    assert w.take()[0]["data"]["events"] == [{"name": "online", "user_ids": ["friend"]}]
    f.disconnect()
    bus.pump()
    assert w.take()[0]["data"]["events"] == [{"name": "offline", "user_ids": ["friend"]}]


def test_max_connections_is_cluster_wide() -> None:
    bus = Bus()
    app = replace(APP, max_connections=2)
    a, b = bus.add("a", app), bus.add("b", app)
    client_on(bus, a)
    client_on(bus, b)
    refused = FakeClient(hub_of(a)).connect()
    assert refused.session is None and refused.closed_with is not None
    assert refused.closed_with[0] == 4004


def test_broker_outage_then_recovery_rebuilds_state() -> None:
    bus = Bus()
    a, b = bus.add("a"), bus.add("b")
    x = client_on(bus, a)
    x.subscribe("presence-r", {"user_id": "x"})
    y = client_on(bus, b)
    y.subscribe("presence-r", {"user_id": "y"})
    bus.pump()
    x.take()
    bus.up = False
    bus.advance(20)  # both sides time the other out
    assert hub_of(a).user_ids("presence-r") == ["x"]
    assert [m["data"]["user_id"] for m in x.take()] == ["y"]  # member_removed
    hub_of(a).publish("local", ["presence-r"], "still", None, bus.now)
    assert x.take()[0]["event"] == "local"  # local fan-out keeps working
    bus.up = True
    for node in (a, b):
        node.connected(bus.now)  # the broker reconnected
    bus.pump()
    assert sorted(hub_of(a).user_ids("presence-r")) == ["x", "y"]
    assert [m["event"] for m in x.take()] == ["pusher_internal:member_added"]


def test_simultaneous_joins_on_two_nodes_converge_through_member_added() -> None:
    bus = Bus()
    a, b = bus.add("a"), bus.add("b")
    x, y = client_on(bus, a), client_on(bus, b)
    x.subscribe("presence-race", {"user_id": "x"})
    y.subscribe("presence-race", {"user_id": "y"})  # before a's join reached b
    assert json.loads(x.take()[0]["data"])["presence"]["ids"] == ["x"]
    assert json.loads(y.take()[0]["data"])["presence"]["ids"] == ["y"]
    bus.pump()
    assert [m["data"]["user_id"] for m in x.take()] == ["y"]
    assert [m["data"]["user_id"] for m in y.take()] == ["x"]


def test_lifecycle_webhooks_are_sent_once_even_when_nodes_race() -> None:
    bus = Bus()
    app = replace(APP, webhook_urls=("http://127.0.0.1:1/hooks",))
    a, b = bus.add("a", app), bus.add("b", app)
    sent: list[tuple[str, dict[str, object]]] = []
    for name, node in (("a", a), ("b", b)):
        hub_of(node).webhook = lambda event, name=name: sent.append((name, event))
    x, y = client_on(bus, a), client_on(bus, b)
    x.subscribe("presence-w", {"user_id": "same"})
    y.subscribe("presence-w", {"user_id": "same"})  # both before either message travelled
    bus.pump()
    x.disconnect()
    y.disconnect()  # both leave at once too
    bus.pump()
    names = sorted(str(event["name"]) for _, event in sent)
    assert names == ["channel_occupied", "channel_vacated", "member_added", "member_removed"]


def test_a_dead_nodes_channels_are_vacated_by_one_survivor() -> None:
    bus = Bus()
    app = replace(APP, webhook_urls=("http://127.0.0.1:1/hooks",))
    a, b, c = bus.add("a", app), bus.add("b", app), bus.add("c", app)
    sent: list[tuple[str, dict[str, object]]] = []
    for name, node in (("a", a), ("b", b), ("c", c)):
        hub_of(node).webhook = lambda event, name=name: sent.append((name, event))
    doomed = client_on(bus, c)
    doomed.subscribe("presence-d", {"user_id": "z"})
    bus.pump()
    sent.clear()
    bus.kill(c)
    for _ in range(5):  # heartbeats keep a and b alive while c times out
        bus.advance(5)
    assert sorted((who, str(e["name"])) for who, e in sent) == [
        ("a", "channel_vacated"),
        ("a", "member_removed"),
    ]


def test_channel_list_is_cluster_wide() -> None:
    bus = Bus()
    a, b = bus.add("a"), bus.add("b")
    client_on(bus, a).subscribe("only-on-a")
    bus.pump()
    api = Api(b.node)
    target = signed_target(
        "GET", "/apps/1/channels", params={"info": "subscription_count"}, key="key", secret="secret"
    )
    answer = api.handle("GET", target, b"", bus.now, time.time())
    assert json.loads(answer.body) == {"channels": {"only-on-a": {"subscription_count": 1}}}


def test_envelopes_joined_into_one_array_are_all_applied() -> None:
    bus = Bus()
    a, b = bus.add("a"), bus.add("b")
    x = client_on(bus, a)
    x.subscribe("joined")
    subscribed = a.flush()
    x.send({"event": "pusher:unsubscribe", "data": {"channel": "joined"}})
    x.subscribe("joined-too")
    changed = a.flush()
    assert subscribed is not None and changed is not None
    b.receive(b"[" + subscribed.envelope + b"," + changed.envelope + b"]", bus.now)
    assert hub_of(b).channel_names() == {"joined-too"}
