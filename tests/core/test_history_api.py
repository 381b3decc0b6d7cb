"""The HTTP side of history (protocol.md §8): ``info=position`` and the history route."""

from __future__ import annotations

import hashlib
import json
import time
from itertools import count
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from overtone.apps import App, AppRegistry
from overtone.channels.history import HistoryLimits
from overtone.http.api import Api
from overtone.node import Node
from overtone.protocol.signatures import request_signature
from support.fakes import FakeClient

APP = App(id="1", key="key", secret="secret")  # history on, by default
OFF = App(id="2", key="key2", secret="secret2", history=HistoryLimits(enabled=False))
SMALL = App(id="3", key="key3", secret="secret3", history=HistoryLimits(max_events=2, ttl=60))


def make_api() -> Api:
    node = Node(AppRegistry([APP, OFF, SMALL]))
    ids = count(1)
    node.new_socket_id = lambda: f"{next(ids)}.1"  # type: ignore[method-assign]
    return Api(node)


def signed(method: str, path: str, body: bytes, params: dict[str, str] | None, app: App) -> str:
    query = {
        "auth_key": app.key,
        "auth_timestamp": str(int(time.time())),
        "auth_version": "1.0",
        **(params or {}),
    }
    if body:
        query["body_md5"] = hashlib.md5(body).hexdigest()
    query["auth_signature"] = request_signature(app.secret, method, path, query.items())
    return f"{path}?{urlencode(query)}"


def call(
    api: Api,
    method: str,
    path: str,
    body: Any = None,
    params: dict[str, str] | None = None,
    app: App = APP,
    now: float = 0.0,
) -> tuple[int, dict[str, Any]]:
    raw = json.dumps(body).encode() if body is not None else b""
    response = api.handle(method, signed(method, path, raw, params, app), raw, now, time.time())
    return response.status, json.loads(response.body)


def trigger(api: Api, channel: str, *data: str, app: App = APP, now: float = 0.0) -> None:
    for item in data:
        body = {"name": "e", "channels": [channel], "data": item}
        assert call(api, "POST", f"/apps/{app.id}/events", body, app=app, now=now) == (200, {})


def position(api: Api, channel: str, app: App = APP, now: float = 0.0) -> dict[str, Any]:
    path = f"/apps/{app.id}/channels/{quote(channel, safe='')}"
    status, answer = call(api, "GET", path, params={"info": "position"}, app=app, now=now)
    assert status == 200, answer
    position: dict[str, Any] = answer["position"]
    return position


def history(
    api: Api, channel: str, app: App = APP, now: float = 0.0, **params: str
) -> tuple[int, dict[str, Any]]:
    path = f"/apps/{app.id}/channels/{quote(channel, safe='')}/history"
    return call(api, "GET", path, params=params, app=app, now=now)


# -- info=position ------------------------------------------------------------------------


def test_info_position_gives_the_stream_position_and_follows_triggers() -> None:
    api = make_api()
    status, answer = call(api, "GET", "/apps/1/channels/news", params={"info": "position"})
    assert status == 200
    epoch = answer["position"]["epoch"]
    assert answer == {"occupied": False, "position": {"epoch": epoch, "offset": 0}}
    trigger(api, "news", "a", "b")
    assert position(api, "news") == {"epoch": epoch, "offset": 2}
    status, answer = call(
        api, "GET", "/apps/1/channels/news", params={"info": "subscription_count,position"}
    )
    assert answer == {
        "occupied": False,
        "subscription_count": 0,
        "position": {"epoch": epoch, "offset": 2},
    }


def test_info_position_is_where_a_subscriber_stands() -> None:
    api = make_api()
    trigger(api, "news", "a")
    c = FakeClient(api.node.hub(APP)).connect()
    c.subscribe("news")
    ok = c.take()[-1]
    assert ok["position"] == position(api, "news")
    trigger(api, "news", "b")
    assert c.take()[0]["offset"] == position(api, "news")["offset"] == 2


def test_info_position_on_a_server_to_user_channel() -> None:
    api = make_api()
    trigger(api, "#server-to-user-u1", "hi")
    assert position(api, "#server-to-user-u1")["offset"] == 1


def test_no_position_when_history_is_off_or_not_asked() -> None:
    api = make_api()
    trigger(api, "news", "a", app=OFF)
    status, answer = call(api, "GET", "/apps/2/channels/news", params={"info": "position"}, app=OFF)
    assert (status, answer) == (200, {"occupied": False})
    assert call(api, "GET", "/apps/1/channels/news") == (200, {"occupied": False})


def test_info_position_refuses_an_invalid_channel_name() -> None:
    api = make_api()
    status, answer = call(api, "GET", "/apps/1/channels/bad%20name", params={"info": "position"})
    assert status == 400 and "channel name" in answer["error"]


# -- the history route ----------------------------------------------------------------------


def test_history_returns_position_completeness_and_events() -> None:
    api = make_api()
    trigger(api, "news", *"abcde")
    status, answer = history(api, "news")
    assert status == 200
    epoch = answer["position"]["epoch"]
    assert answer == {
        "position": {"epoch": epoch, "offset": 5},
        "complete": True,
        "events": [{"offset": n, "event": "e", "data": d} for n, d in enumerate("abcde", 1)],
    }
    status, answer = history(api, "news", since="3", epoch=epoch)
    assert answer["complete"] is True
    assert [e["offset"] for e in answer["events"]] == [4, 5]
    status, answer = history(api, "news", since="5")
    assert (answer["complete"], answer["events"]) == (True, [])


def test_history_of_a_channel_never_published_to() -> None:
    api = make_api()
    status, answer = history(api, "quiet")
    assert status == 200
    assert answer["position"]["offset"] == 0
    assert (answer["complete"], answer["events"]) == (True, [])


def test_history_pages_with_limit() -> None:
    api = make_api()
    trigger(api, "news", *"abcde")
    since, pages = "0", []
    while True:
        status, answer = history(api, "news", since=since, limit="2")
        assert status == 200 and answer["complete"] is True
        pages.append([e["data"] for e in answer["events"]])
        if len(answer["events"]) < 2:
            break
        since = str(answer["events"][-1]["offset"])
    assert pages == [["a", "b"], ["c", "d"], ["e"]]


def test_history_is_incomplete_for_another_epoch_or_an_unreached_offset() -> None:
    api = make_api()
    trigger(api, "news", "a", "b")
    status, answer = history(api, "news", epoch="another", since="1")
    assert status == 200 and answer["complete"] is False
    assert [e["offset"] for e in answer["events"]] == [1, 2]  # everything held is new
    status, answer = history(api, "news", since="7")
    assert answer["complete"] is False
    assert [e["offset"] for e in answer["events"]] == [1, 2]


def test_history_is_incomplete_once_events_were_evicted() -> None:
    api = make_api()
    trigger(api, "news", "a", "b", "c", app=SMALL)  # keeps 2
    status, answer = history(api, "news", app=SMALL, since="0")
    assert status == 200 and answer["complete"] is False
    assert [e["offset"] for e in answer["events"]] == [2, 3]
    status, answer = history(api, "news", app=SMALL, since="1")
    assert answer["complete"] is True
    trigger(api, "news", "d", app=SMALL, now=30)
    status, answer = history(api, "news", app=SMALL, since="2", now=61)  # 2 and 3 expired
    assert answer["complete"] is False
    assert [e["offset"] for e in answer["events"]] == [4]
    status, answer = history(api, "news", app=SMALL, since="3", now=61)
    assert answer["complete"] is True


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"since": "x"}, "since must be an integer"),
        ({"since": "1.5"}, "since must be an integer"),
        ({"since": "+5"}, "since must be an integer"),
        ({"since": "1_0"}, "since must be an integer"),
        ({"since": "-1"}, "since must be >= 0"),
        ({"limit": "x"}, "limit must be an integer"),
        ({"limit": "0"}, "limit must be between 1 and 1000"),
        ({"limit": "-3"}, "limit must be between 1 and 1000"),
        ({"limit": "1001"}, "limit must be between 1 and 1000"),
    ],
)
def test_history_refuses_bad_since_and_limit(params: dict[str, str], words: str) -> None:
    api = make_api()
    status, answer = call(api, "GET", "/apps/1/channels/news/history", params=params)
    assert status == 400 and words in answer["error"]


def test_history_accepts_the_largest_limit_and_empty_parameters() -> None:
    api = make_api()
    trigger(api, "news", "a")
    assert history(api, "news", limit="1000")[0] == 200
    status, answer = history(api, "news", since="", limit="")
    assert status == 200 and len(answer["events"]) == 1


def test_history_refuses_an_invalid_channel_name() -> None:
    api = make_api()
    status, answer = history(api, "bad name")
    assert status == 400 and "channel name" in answer["error"]
    status, answer = history(api, "x" * 200)
    assert status == 400 and "longer" in answer["error"]


def test_history_is_refused_when_the_app_keeps_none() -> None:
    api = make_api()
    status, answer = history(api, "news", app=OFF)
    assert status == 400 and "History is off" in answer["error"]


def test_history_needs_a_signature_and_get() -> None:
    api = make_api()
    response = api.handle("GET", "/apps/1/channels/news/history?since=0", b"", 0, time.time())
    assert response.status == 401
    status, answer = call(api, "POST", "/apps/1/channels/news/history", {"since": 0})
    assert status == 405 and "expects GET" in answer["error"]
    wrong_key = App(id="1", key="key", secret="not-the-secret")
    assert history(api, "news", app=wrong_key)[0] == 401
