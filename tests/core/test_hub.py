"""The sans-I/O hub driven by plain calls: every client-visible rule of protocol.md §1-§4."""

from __future__ import annotations

import json
from dataclasses import replace
from itertools import count
from typing import Any

import pytest

from overtone.apps import App, ClientEventsFrom, RateLimit
from overtone.channels.history import HistoryLimits
from overtone.hub import Hub
from overtone.protocol.errors import SERVER_SHUTTING_DOWN
from support.fakes import FakeClient, auth_for, signin_data

# Plain Pusher frames: history (offsets and positions) is covered by tests/core/test_history*.py.
APP = App(id="1", key="key", secret="secret", history=HistoryLimits(enabled=False))


def make_hub(**options: Any) -> Hub:
    ids = count(1)
    return Hub(replace(APP, **options), lambda: f"{next(ids)}.1", pong_timeout=30)


def client(hub: Hub, now: float = 0.0, origin: str | None = None) -> FakeClient:
    c = FakeClient(hub, origin=origin, now=now).connect()
    c.take()
    return c


def test_connection_established_carries_socket_id_and_activity_timeout() -> None:
    hub = make_hub(activity_timeout=45)
    c = FakeClient(hub).connect()
    [first] = c.take()
    assert first["event"] == "pusher:connection_established"
    data = json.loads(first["data"])
    assert data == {"socket_id": c.socket_id, "activity_timeout": 45}


@pytest.mark.parametrize(
    ("options", "origin", "code"),
    [
        ({"enabled": False}, None, 4003),
        ({"allowed_origins": ("app.example.com",)}, "https://evil.example.org", 4009),
        ({"max_connections": 1}, None, 4004),
    ],
)
def test_refused_connections_get_error_then_close(
    options: dict[str, Any], origin: str | None, code: int
) -> None:
    hub = make_hub(**options)
    if code == 4004:
        client(hub)
    c = FakeClient(hub, origin=origin).connect()
    assert c.session is None
    assert c.take()[0]["data"]["code"] == code
    assert c.closed_with is not None and c.closed_with[0] == code


def test_allowed_origin_patterns() -> None:
    hub = make_hub(allowed_origins=("*.example.com",))
    assert FakeClient(hub, origin="https://app.example.com").connect().session is not None
    assert FakeClient(hub, origin="https://example.org").connect().session is None


def test_ping_pong_and_invalid_messages_keep_the_connection() -> None:
    hub = make_hub()
    c = client(hub)
    c.send({"event": "pusher:ping", "data": {}})
    assert c.take() == [{"event": "pusher:pong", "data": {}}]
    for bad in ["not json", "[]", '{"data": 1}', '{"event": "pusher:bogus"}', "{" * 5000]:
        c.send(bad)
        [err] = c.take()
        assert err["event"] == "pusher:error" and err["data"]["code"] == 4200
    assert c.closed_with is None


def test_deeply_nested_client_event_data_is_refused_not_crashing() -> None:
    hub = make_hub()
    a, b = client(hub), client(hub)
    a.subscribe("private-x")
    b.subscribe("private-x")
    a.take(), b.take()
    nested = "[" * 600 + "]" * 600
    a.send('{"event":"client-x","channel":"private-x","data":' + nested + "}")
    assert b.take() == []
    assert a.take()[0]["event"] == "pusher:error"


def test_public_subscribe_and_publish_with_exclusion() -> None:
    hub = make_hub()
    a, b = client(hub), client(hub)
    a.subscribe("news")
    b.subscribe("news")
    assert a.take() == [
        {"event": "pusher_internal:subscription_succeeded", "channel": "news", "data": "{}"}
    ]
    b.take()
    hub.publish("update", ["news", "empty"], '{"n":1}', exclude=a.socket_id, now=0)
    assert a.take() == []
    assert b.take() == [{"event": "update", "channel": "news", "data": '{"n":1}'}]
    c = client(hub)
    c.send({"event": "pusher:unsubscribe", "data": {"channel": "news"}})
    assert c.take() == []


@pytest.mark.parametrize("name", ["", "x" * 165, "bad name", "bad/name", 42])
def test_invalid_channel_names_get_subscription_error(name: object) -> None:
    hub = make_hub()
    c = client(hub)
    c.send({"event": "pusher:subscribe", "data": {"channel": name}})
    [err] = c.take()
    assert err["event"] == "pusher:subscription_error"
    assert err["data"]["status"] == 401


def test_private_channel_requires_a_valid_signature() -> None:
    hub = make_hub()
    c = client(hub)
    c.send({"event": "pusher:subscribe", "data": {"channel": "private-a", "auth": "key:bad"}})
    [err] = c.take()
    assert err["event"] == "pusher:subscription_error"
    assert err["data"] == {"type": "AuthError", "error": err["data"]["error"], "status": 401}
    other = client(hub)
    stolen = auth_for(hub, other.socket_id, "private-a")
    c.send({"event": "pusher:subscribe", "data": {"channel": "private-a", "auth": stolen}})
    assert c.take()[0]["event"] == "pusher:subscription_error"
    wrong_key = "nokey:" + auth_for(hub, c.socket_id, "private-a").split(":", 1)[1]
    c.send({"event": "pusher:subscribe", "data": {"channel": "private-a", "auth": wrong_key}})
    assert c.take()[0]["event"] == "pusher:subscription_error"
    c.subscribe("private-a")
    assert c.take()[0]["event"] == "pusher_internal:subscription_succeeded"
    hub.publish("e", ["private-a"], "d", None, 0)
    assert c.take()[0]["event"] == "e"


def test_presence_members_are_unique_by_user_id() -> None:
    hub = make_hub()
    alice1, alice2, bob = client(hub), client(hub), client(hub)
    alice1.subscribe("presence-room", {"user_id": "alice", "user_info": {"n": "A"}})
    [ok] = alice1.take()
    presence = json.loads(ok["data"])["presence"]
    assert presence == {"ids": ["alice"], "hash": {"alice": {"n": "A"}}, "count": 1}
    bob.subscribe("presence-room", {"user_id": 7})
    assert json.loads(bob.take()[0]["data"])["presence"]["count"] == 2
    assert alice1.take() == [
        {
            "event": "pusher_internal:member_added",
            "channel": "presence-room",
            "data": {"user_id": "7", "user_info": None},
        }
    ]
    alice2.subscribe("presence-room", {"user_id": "alice", "user_info": {"n": "A"}})
    assert json.loads(alice2.take()[0]["data"])["presence"]["count"] == 2
    assert bob.take() == []  # second connection of alice: no member_added
    alice1.disconnect()
    assert bob.take() == []  # alice still has a connection
    alice2.send({"event": "pusher:unsubscribe", "data": {"channel": "presence-room"}})
    assert bob.take() == [
        {
            "event": "pusher_internal:member_removed",
            "channel": "presence-room",
            "data": {"user_id": "alice"},
        }
    ]
    assert hub.user_ids("presence-room") == ["7"]


def test_presence_limits_give_403() -> None:
    hub = make_hub(max_presence_members=1)
    a, b, c = client(hub), client(hub), client(hub)
    a.subscribe("presence-x", {"user_id": "1"})
    a.take()
    b.subscribe("presence-x", {"user_id": "2"})
    assert b.take()[0]["data"]["status"] == 403
    c.subscribe("presence-y", {"user_id": "u" * 129})
    assert c.take()[0]["data"]["status"] == 403
    c.subscribe("presence-y", {"user_id": "1", "user_info": {"bio": "x" * 1001}})
    assert c.take()[0]["data"]["status"] == 403
    c.subscribe("presence-y", None)
    assert c.take()[0]["event"] == "pusher:subscription_error"


def test_cache_channel_replays_last_event_after_the_channel_emptied() -> None:
    hub = make_hub(cache_ttl=60)
    a = client(hub)
    a.subscribe("cache-quotes")
    assert a.events() == ["pusher_internal:subscription_succeeded", "pusher:cache_miss"]
    a.disconnect()
    hub.publish("quote", ["cache-quotes"], "42", None, now=10)
    late = client(hub, now=20)
    late.subscribe("cache-quotes")
    assert late.take()[1] == {"event": "quote", "channel": "cache-quotes", "data": "42"}
    expired = client(hub, now=71)
    expired.subscribe("cache-quotes")
    assert expired.events()[1] == "pusher:cache_miss"
    plain = client(hub)
    plain.subscribe("cached-not-a-cache-channel")
    assert plain.events() == ["pusher_internal:subscription_succeeded"]


def test_client_events_go_to_others_on_private_channels_only() -> None:
    hub = make_hub()
    a, b = client(hub), client(hub)
    for c in (a, b):
        c.subscribe("private-chat")
        c.subscribe("public")
        c.take()
    a.send({"event": "client-typing", "channel": "private-chat", "data": {"x": 1}})
    assert a.take() == []
    assert b.take() == [{"event": "client-typing", "channel": "private-chat", "data": {"x": 1}}]
    a.send({"event": "client-typing", "channel": "public", "data": {}})
    assert a.take()[0]["event"] == "pusher:error"
    a.send({"event": "client-typing", "channel": "private-encrypted-x", "data": {}})
    assert a.take()[0]["event"] == "pusher:error"
    a.send({"event": "client-typing", "channel": "private-other", "data": {}})
    assert a.take()[0]["event"] == "pusher:error"  # not subscribed
    assert b.take() == []


def test_client_events_on_presence_carry_user_id() -> None:
    hub = make_hub()
    a, b = client(hub), client(hub)
    a.subscribe("presence-p", {"user_id": "a"})
    b.subscribe("presence-p", {"user_id": "b"})
    a.take(), b.take()
    a.send({"event": "client-hi", "channel": "presence-p", "data": "s"})
    assert b.take() == [
        {"event": "client-hi", "channel": "presence-p", "data": "s", "user_id": "a"}
    ]


def test_client_events_from_all_and_none() -> None:
    hub = make_hub(client_events_from=ClientEventsFrom.ALL)
    a, b = client(hub), client(hub)
    b.subscribe("private-c")
    b.take()
    a.send({"event": "client-x", "channel": "private-c", "data": 1})
    assert b.take()[0]["event"] == "client-x"
    hub = make_hub(client_events_from=ClientEventsFrom.NONE)
    a = client(hub)
    a.subscribe("private-c")
    a.take()
    a.send({"event": "client-x", "channel": "private-c", "data": 1})
    assert a.take()[0]["event"] == "pusher:error"


def test_client_event_rate_limit_4301() -> None:
    hub = make_hub(rate_limit=RateLimit(max_attempts=3, decay_seconds=1))
    a, b = client(hub), client(hub)
    for c in (a, b):
        c.subscribe("private-r")
        c.take()
    for _ in range(5):
        a.send({"event": "client-x", "channel": "private-r", "data": 1}, now=0.5)
    assert len(b.take()) == 3
    errors = [m for m in a.take() if m["event"] == "pusher:error"]
    assert [e["data"]["code"] for e in errors] == [4301, 4301]
    assert a.closed_with is None
    a.send({"event": "client-x", "channel": "private-r", "data": 1}, now=1.6)
    assert len(b.take()) == 1


def test_rate_limit_terminate_closes() -> None:
    hub = make_hub(rate_limit=RateLimit(max_attempts=1, decay_seconds=1, terminate=True))
    a = client(hub)
    a.subscribe("private-r")
    for _ in range(2):
        a.send({"event": "client-x", "channel": "private-r", "data": 1})
    assert a.closed_with is not None and a.closed_with[0] == 4301


def test_signin_server_to_user_and_watchlist() -> None:
    hub = make_hub()
    watcher = client(hub)
    watcher.send(
        {
            "event": "pusher:signin",
            "data": signin_data(hub, watcher.socket_id, {"id": "w", "watchlist": ["u1"]}),
        }
    )
    assert watcher.events() == ["pusher:signin_success"]
    u1 = client(hub)
    u1.send({"event": "pusher:signin", "data": signin_data(hub, u1.socket_id, {"id": "u1"})})
    [success] = u1.take()
    assert json.loads(success["data"]["user_data"]) == {"id": "u1"}
    [online] = watcher.take()
    assert online["data"] == {"events": [{"name": "online", "user_ids": ["u1"]}]}
    u1.subscribe("#server-to-user-u1")
    assert u1.events() == ["pusher_internal:subscription_succeeded"]
    watcher.subscribe("#server-to-user-u1")
    assert watcher.events() == ["pusher:subscription_error"]
    hub.publish("dm", ["#server-to-user-u1"], "hi", None, 0)
    assert u1.take() == [{"event": "dm", "channel": "#server-to-user-u1", "data": "hi"}]
    assert hub.terminate_user("u1") == 1
    assert u1.take()[-1]["data"]["code"] == 4009
    assert u1.closed_with is not None and u1.closed_with[0] == 4009
    assert watcher.take()[0]["data"] == {"events": [{"name": "offline", "user_ids": ["u1"]}]}


def test_server_to_user_events_arrive_from_signin_on_before_the_subscribe() -> None:
    hub = make_hub()
    u1 = client(hub)
    u1.send({"event": "pusher:signin", "data": signin_data(hub, u1.socket_id, {"id": "u1"})})
    assert u1.events() == ["pusher:signin_success"]
    hub.publish("dm", ["#server-to-user-u1"], "early", None, 0)  # before pusher-js subscribes
    u1.subscribe("#server-to-user-u1")
    hub.publish("dm", ["#server-to-user-u1"], "later", None, 0)
    assert [(m["event"], m.get("data")) for m in u1.take()] == [
        ("dm", "early"),
        ("pusher_internal:subscription_succeeded", "{}"),
        ("dm", "later"),
    ]
    assert hub.subscription_count("#server-to-user-u1") == 1
    # Signing in as someone else stops the first user's events; leaving forgets the channel.
    u1.send({"event": "pusher:signin", "data": signin_data(hub, u1.socket_id, {"id": "u2"})})
    u1.take()
    hub.publish("dm", ["#server-to-user-u1"], "not for u2", None, 0)
    assert u1.take() == []
    u1.disconnect()
    assert hub.subscription_count("#server-to-user-u2") == 0


def test_bad_signin_closes_with_4009() -> None:
    hub = make_hub()
    c = client(hub)
    c.send({"event": "pusher:signin", "data": {"user_data": '{"id":"x"}', "auth": "key:nope"}})
    assert c.take()[0]["data"]["code"] == 4009
    assert c.closed_with is not None and c.closed_with[0] == 4009
    assert hub.sessions == {}


def test_terminate_reaches_presence_members_too() -> None:
    hub = make_hub()
    a, b = client(hub), client(hub)
    a.subscribe("presence-t", {"user_id": "victim"})
    b.subscribe("presence-t", {"user_id": "other"})
    b.take()
    assert hub.terminate_user("victim") == 1
    assert a.closed_with is not None
    assert b.take()[0]["event"] == "pusher_internal:member_removed"


def test_keepalive_pings_idle_connections_then_closes_with_4201() -> None:
    hub = make_hub(activity_timeout=30)
    idle, chatty = client(hub, now=0), client(hub, now=0)
    hub.tick(29)
    assert idle.take() == []
    hub.tick(30)
    assert idle.events() == ["pusher:ping"]
    chatty.take()
    chatty.send({"event": "pusher:pong", "data": {}}, now=31)
    hub.tick(60)
    assert idle.take()[0]["data"]["code"] == 4201
    assert idle.closed_with is not None and idle.closed_with[0] == 4201
    assert chatty.closed_with is None
    assert set(hub.sessions) == {chatty.socket_id}


@pytest.mark.parametrize(
    ("activity_timeout", "ping_interval", "pinged_at"),
    [(30, 60, 30), (30, 10, 10), (30, 30, 30), (120, 60, 60)],
)
def test_ping_interval_shorter_than_the_activity_timeout_pings_sooner(
    activity_timeout: int, ping_interval: int, pinged_at: int
) -> None:
    # Reverb's ping_interval: how long a silent connection goes unpinged. Clients are still
    # told activity_timeout; a dead connection is gone pong_timeout after the ping.
    hub = make_hub(activity_timeout=activity_timeout, ping_interval=ping_interval)
    c = FakeClient(hub, now=0).connect()
    assert json.loads(c.take()[0]["data"])["activity_timeout"] == activity_timeout
    hub.tick(pinged_at - 1)
    assert c.take() == []
    hub.tick(pinged_at)
    assert c.events() == ["pusher:ping"]
    hub.tick(pinged_at + 29)
    assert c.closed_with is None
    hub.tick(pinged_at + 30)
    assert c.closed_with is not None and c.closed_with[0] == 4201
    assert hub.sessions == {}


def test_close_all_sends_4200() -> None:
    hub = make_hub()
    a = client(hub)
    hub.close_all(SERVER_SHUTTING_DOWN)
    assert a.take()[0]["data"]["code"] == 4200
    assert a.closed_with is not None and a.closed_with[0] == 4200
