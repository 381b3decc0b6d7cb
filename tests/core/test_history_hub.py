"""History through the hub (protocol.md §8): offsets on events, positions on subscribing,
recovery of missed events, and plain Pusher frames when an app keeps no history."""

from __future__ import annotations

import json
from dataclasses import replace
from itertools import count
from typing import Any

import pytest

from overtone.apps import App
from overtone.channels.history import HEADER_KEEP, HistoryLimits
from overtone.hub import HISTORY_SWEEP, Hub
from support.fakes import FakeClient, signin_data

APP = App(id="1", key="key", secret="secret")  # history on, by default


def make_hub(history: HistoryLimits | None = None, **options: Any) -> Hub:
    ids = count(1)
    app = replace(APP, history=history or HistoryLimits(), **options)
    return Hub(app, lambda: f"{next(ids)}.1", pong_timeout=30)


def client(hub: Hub, now: float = 0.0) -> FakeClient:
    c = FakeClient(hub, now=now).connect()
    c.take()
    return c


def subscribed(c: FakeClient, channel: str, **extra: Any) -> dict[str, Any]:
    """Subscribe and return ``subscription_succeeded`` (checked to be the first answer)."""
    c.subscribe(channel, **extra)
    answer = c.sent[0]
    assert answer["event"] == "pusher_internal:subscription_succeeded", answer
    return answer


def offsets(messages: list[dict[str, Any]]) -> list[int]:
    return [m["offset"] for m in messages]


def test_events_carry_offsets_and_the_subscription_a_position() -> None:
    hub = make_hub()
    c = client(hub)
    ok = subscribed(c, "news")
    epoch = ok["position"]["epoch"]
    assert isinstance(epoch, str) and epoch
    assert ok == {
        "event": "pusher_internal:subscription_succeeded",
        "channel": "news",
        "data": "{}",
        "position": {"epoch": epoch, "offset": 0},
    }
    c.take()
    for n in range(3):
        hub.publish("story", ["news"], f"s{n}", None, 0)
    assert c.take() == [
        {"event": "story", "channel": "news", "data": f"s{n}", "offset": n + 1} for n in range(3)
    ]
    late = client(hub)
    assert subscribed(late, "news")["position"] == {"epoch": epoch, "offset": 3}


def test_each_channel_counts_its_own_offsets() -> None:
    hub = make_hub()
    c = client(hub)
    subscribed(c, "a")
    subscribed(c, "b")
    c.take()
    hub.publish("e", ["a", "b"], "1", None, 0)
    hub.publish("e", ["b"], "2", None, 0)
    assert [(m["channel"], m["offset"]) for m in c.take()] == [("a", 1), ("b", 1), ("b", 2)]
    assert subscribed(client(hub), "b")["position"]["offset"] == 2


def test_an_excluded_socket_still_moves_the_offset_for_everyone() -> None:
    hub = make_hub()
    a, b = client(hub), client(hub)
    subscribed(a, "news")
    subscribed(b, "news")
    a.take()
    b.take()
    hub.publish("e", ["news"], "1", a.socket_id, 0)
    hub.publish("e", ["news"], "2", None, 0)
    assert offsets(a.take()) == [2]
    assert offsets(b.take()) == [1, 2]


def test_client_events_carry_no_offset_and_are_not_stored() -> None:
    hub = make_hub()
    a, b = client(hub), client(hub)
    subscribed(a, "private-room")
    subscribed(b, "private-room")
    a.take()
    b.take()
    a.send({"event": "client-typing", "channel": "private-room", "data": {"n": 1}})
    assert b.take() == [{"event": "client-typing", "channel": "private-room", "data": {"n": 1}}]
    hub.publish("e", ["private-room"], "x", None, 0)
    assert offsets(b.take()) == [1]
    assert hub.history is not None
    assert [offset for offset, _ in hub.history.held("private-room", 0)] == [1]


def test_presence_subscription_carries_position_alongside_presence() -> None:
    hub = make_hub()
    hub.publish("e", ["presence-room"], "before", None, 0)
    c = client(hub)
    ok = subscribed(c, "presence-room", user={"user_id": "u1", "user_info": {"n": 1}})
    assert json.loads(ok["data"]) == {
        "presence": {"ids": ["u1"], "hash": {"u1": {"n": 1}}, "count": 1}
    }
    assert ok["position"]["offset"] == 1
    assert "recovered" not in ok


def test_recover_replays_missed_events_in_order_then_live_ones() -> None:
    hub = make_hub()
    c = client(hub)
    epoch = subscribed(c, "news")["position"]["epoch"]
    c.take()
    hub.publish("e", ["news"], "1", None, 0)
    [seen] = c.take()
    c.disconnect()
    for n in (2, 3, 4):
        hub.publish("e", ["news"], str(n), None, 1)
    back = client(hub, now=2)
    back.subscribe("news", recover={"epoch": epoch, "offset": seen["offset"]})
    hub.publish("e", ["news"], "5", None, 3)
    ok, *events = back.take()
    assert ok["event"] == "pusher_internal:subscription_succeeded"
    assert ok["recovered"] is True
    assert ok["position"] == {"epoch": epoch, "offset": 4}
    assert events == [
        {"event": "e", "channel": "news", "data": str(n), "offset": n} for n in (2, 3, 4, 5)
    ]
    assert hub.stats.recovered == 1


def test_recover_when_up_to_date_sends_nothing_old() -> None:
    hub = make_hub()
    hub.publish("e", ["news"], "1", None, 0)
    c = client(hub)
    epoch = subscribed(c, "news")["position"]["epoch"]
    c.disconnect()
    back = client(hub)
    back.subscribe("news", recover={"epoch": epoch, "offset": 1})
    [ok] = back.take()
    assert (ok["recovered"], ok["position"]) == (True, {"epoch": epoch, "offset": 1})


def test_a_page_rendered_from_a_position_recovers_from_there() -> None:
    hub = make_hub()
    hub.publish("e", ["news"], "1", None, 0)
    assert hub.history is not None
    rendered = hub.history.position("news", 0)  # what info=position returns
    hub.publish("e", ["news"], "2", None, 1)
    c = client(hub, now=2)
    c.subscribe("news", recover=rendered.to_wire())
    ok, event = c.take()
    assert ok["recovered"] is True
    assert (event["data"], event["offset"]) == ("2", 2)


@pytest.mark.parametrize(
    "recover",
    [
        {"epoch": "another", "offset": 1},
        {"epoch": "EPOCH", "offset": 9},  # beyond the stream
        {"epoch": "EPOCH", "offset": "x"},
        {"epoch": "EPOCH", "offset": -1},
        {"epoch": "EPOCH", "offset": 1.0},
        {"epoch": "EPOCH", "offset": True},
        {"epoch": "EPOCH"},
        {"offset": 1},
        {"epoch": 7, "offset": 1},
        "EPOCH:1",
        [1],
        0,
        {},
    ],
)
def test_recovered_false_for_a_position_the_stream_cannot_continue(recover: object) -> None:
    hub = make_hub()
    c = client(hub)
    epoch = subscribed(c, "news")["position"]["epoch"]
    c.disconnect()
    for n in (1, 2, 3):
        hub.publish("e", ["news"], str(n), None, 0)
    if isinstance(recover, dict):
        recover = {k: epoch if v == "EPOCH" else v for k, v in recover.items()}
    back = client(hub)
    back.subscribe("news", recover=recover)
    [ok] = back.take()
    assert ok["recovered"] is False
    assert ok["position"] == {"epoch": epoch, "offset": 3}
    assert hub.stats.resynced == 1


def test_recovered_false_once_max_events_evicted_what_was_missed() -> None:
    hub = make_hub(HistoryLimits(max_events=2))
    c = client(hub)
    epoch = subscribed(c, "news")["position"]["epoch"]
    c.disconnect()
    for n in (1, 2, 3):
        hub.publish("e", ["news"], str(n), None, 0)
    old = client(hub)
    old.subscribe("news", recover={"epoch": epoch, "offset": 0})
    [ok] = old.take()
    assert (ok["recovered"], ok["position"]["offset"]) == (False, 3)
    recent = client(hub)
    recent.subscribe("news", recover={"epoch": epoch, "offset": 1})
    assert [m.get("offset") for m in recent.take()] == [None, 2, 3]


def test_recovered_false_once_the_ttl_expired_what_was_missed() -> None:
    hub = make_hub(HistoryLimits(ttl=60))
    c = client(hub)
    epoch = subscribed(c, "news")["position"]["epoch"]
    c.disconnect()
    hub.publish("e", ["news"], "1", None, 0)
    hub.publish("e", ["news"], "2", None, 30)
    in_time = client(hub, now=59)
    in_time.subscribe("news", recover={"epoch": epoch, "offset": 0})
    assert [m.get("offset") for m in in_time.take()] == [None, 1, 2]
    too_late = client(hub, now=60)
    too_late.subscribe("news", recover={"epoch": epoch, "offset": 0})
    [ok] = too_late.take()
    assert ok["recovered"] is False
    partly = client(hub, now=60)
    partly.subscribe("news", recover={"epoch": epoch, "offset": 1})
    assert [m.get("offset") for m in partly.take()] == [None, 2]


def test_recover_after_the_header_was_swept_is_a_new_epoch() -> None:
    hub = make_hub(HistoryLimits(ttl=10))
    c = client(hub)
    epoch = subscribed(c, "news")["position"]["epoch"]
    hub.publish("e", ["news"], "1", None, 0)
    c.disconnect()
    hub.tick(HEADER_KEEP + 1)
    back = client(hub, now=HEADER_KEEP + 2)
    back.subscribe("news", recover={"epoch": epoch, "offset": 1})
    [ok] = back.take()
    assert ok["recovered"] is False
    assert ok["position"]["epoch"] != epoch and ok["position"]["offset"] == 0


def test_tick_sweeps_idle_headers_but_keeps_occupied_channels() -> None:
    hub = make_hub(HistoryLimits(ttl=10))
    assert hub.history is not None
    watcher = client(hub)
    subscribed(watcher, "watched")
    hub.publish("e", ["watched", "idle"], "1", None, 0)
    hub.tick(8)  # the first tick sweeps: nothing is old yet
    assert set(hub.history.streams) == {"watched", "idle"}
    hub.tick(8 + HISTORY_SWEEP - 1)  # too soon after the last sweep: nothing happens
    assert len(hub.history.streams["idle"].entries) == 1
    hub.tick(8 + HISTORY_SWEEP)  # events expire, headers stay
    assert hub.history.budget.used == 0
    assert set(hub.history.streams) == {"watched", "idle"}
    watcher.send({"event": "pusher:pong", "data": {}}, now=HEADER_KEEP + 10)
    hub.tick(HEADER_KEEP + 10)
    assert set(hub.history.streams) == {"watched"}


# -- history off --------------------------------------------------------------------------


def test_history_off_gives_plain_pusher_frames() -> None:
    hub = make_hub(HistoryLimits(enabled=False))
    assert hub.history is None
    c = client(hub)
    ok = subscribed(c, "news")
    assert ok == {
        "event": "pusher_internal:subscription_succeeded",
        "channel": "news",
        "data": "{}",
    }
    c.take()
    hub.publish("e", ["news"], "1", None, 0)
    assert c.take() == [{"event": "e", "channel": "news", "data": "1"}]


def test_history_off_answers_recover_with_recovered_false_and_no_position() -> None:
    hub = make_hub(HistoryLimits(enabled=False))
    hub.publish("e", ["news"], "1", None, 0)
    c = client(hub)
    c.subscribe("news", recover={"epoch": "E", "offset": 0})
    assert c.take() == [
        {
            "event": "pusher_internal:subscription_succeeded",
            "channel": "news",
            "data": "{}",
            "recovered": False,
        }
    ]


# -- cache channels -------------------------------------------------------------------------


def test_cache_channel_recovered_does_not_resend_the_cached_event() -> None:
    hub = make_hub(cache_ttl=600)
    c = client(hub)
    epoch = subscribed(c, "cache-quote")["position"]["epoch"]
    hub.publish("q", ["cache-quote"], "1", None, 0)
    c.disconnect()
    up_to_date = client(hub)
    up_to_date.subscribe("cache-quote", recover={"epoch": epoch, "offset": 1})
    [ok] = up_to_date.take()
    assert ok["recovered"] is True
    hub.publish("q", ["cache-quote"], "2", None, 0)
    behind = client(hub)
    behind.subscribe("cache-quote", recover={"epoch": epoch, "offset": 1})
    ok, replayed = behind.take()  # the missed event once, not again as the cached one
    assert ok["recovered"] is True
    assert (replayed["data"], replayed["offset"]) == ("2", 2)


def test_cache_channel_without_recovery_still_gets_the_cached_event_or_cache_miss() -> None:
    hub = make_hub(cache_ttl=600)
    empty = client(hub)
    empty.subscribe("cache-quote", recover={"epoch": "gone", "offset": 0})
    assert [m["event"] for m in empty.take()] == [
        "pusher_internal:subscription_succeeded",
        "pusher:cache_miss",
    ]
    hub.publish("q", ["cache-quote"], "1", None, 0)
    empty.take()
    for recover in ({"epoch": "gone", "offset": 0}, None):
        c = client(hub)
        if recover is None:
            c.subscribe("cache-quote")
        else:
            c.subscribe("cache-quote", recover=recover)
        ok, cached = c.take()
        assert ok.get("recovered") is (None if recover is None else False)
        assert cached == {"event": "q", "channel": "cache-quote", "data": "1", "offset": 1}


# -- encrypted and server-to-user channels ------------------------------------------------


def test_encrypted_channel_events_are_stored_exactly_as_sent() -> None:
    hub = make_hub()
    ciphertext = json.dumps({"nonce": "bm9uY2U=", "ciphertext": "Y2lwaGVy/+=="})
    c = client(hub)
    epoch = subscribed(c, "private-encrypted-chart")["position"]["epoch"]
    c.take()
    hub.publish("secret", ["private-encrypted-chart"], ciphertext, None, 0)
    [live] = c.take()
    assert live["data"] == ciphertext and live["offset"] == 1
    c.disconnect()
    back = client(hub)
    back.subscribe("private-encrypted-chart", recover={"epoch": epoch, "offset": 0})
    _, replayed = back.take()
    assert replayed == live


def test_server_to_user_events_get_offsets_and_recover() -> None:
    hub = make_hub()
    u = client(hub)
    u.send({"event": "pusher:signin", "data": signin_data(hub, u.socket_id, {"id": "u1"})})
    u.take()
    epoch = subscribed(u, "#server-to-user-u1")["position"]["epoch"]
    u.take()
    hub.publish("dm", ["#server-to-user-u1"], "hi", None, 0)
    assert u.take() == [{"event": "dm", "channel": "#server-to-user-u1", "data": "hi", "offset": 1}]
    u.disconnect()
    hub.publish("dm", ["#server-to-user-u1"], "missed", None, 1)
    again = client(hub)
    again.send({"event": "pusher:signin", "data": signin_data(hub, again.socket_id, {"id": "u1"})})
    again.take()
    again.subscribe("#server-to-user-u1", recover={"epoch": epoch, "offset": 1})
    ok, missed = again.take()
    assert ok["recovered"] is True
    assert (missed["data"], missed["offset"]) == ("missed", 2)
