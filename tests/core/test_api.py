"""The HTTP API handlers, signed the way the Pusher server SDKs sign."""

from __future__ import annotations

import hashlib
import json
import time
from itertools import count
from typing import Any
from urllib.parse import urlencode

import pytest

from overtone.apps import App, AppRegistry
from overtone.channels.history import HistoryLimits
from overtone.http.api import Api
from overtone.node import Node
from overtone.protocol.signatures import request_signature
from support.fakes import FakeClient

# Plain Pusher frames: history (offsets and positions) is covered by tests/core/test_history*.py.
APP = App(id="1", key="key", secret="secret", history=HistoryLimits(enabled=False))
DISABLED = App(id="2", key="key2", secret="secret2", enabled=False)


def make_api(prefix: str = "") -> Api:
    node = Node(AppRegistry([APP, DISABLED]))
    ids = count(1)
    node.new_socket_id = lambda: f"{next(ids)}.1"  # type: ignore[method-assign]
    return Api(node, prefix)


def signed(
    method: str,
    path: str,
    body: bytes = b"",
    params: dict[str, str] | None = None,
    app: App = APP,
    timestamp: int | None = None,
    sign_path: str | None = None,
) -> str:
    query = {
        "auth_key": app.key,
        "auth_timestamp": str(int(time.time()) if timestamp is None else timestamp),
        "auth_version": "1.0",
        **(params or {}),
    }
    if body:
        query["body_md5"] = hashlib.md5(body).hexdigest()
    query["auth_signature"] = request_signature(
        app.secret, method, sign_path or path, query.items()
    )
    return f"{path}?{urlencode(query)}"


def call(
    api: Api, method: str, path: str, body: Any = None, **kw: Any
) -> tuple[int, dict[str, Any]]:
    raw = json.dumps(body).encode() if body is not None else b""
    response = api.handle(method, signed(method, path, raw, **kw), raw, 0.0, time.time())
    return response.status, json.loads(response.body)


def test_up_is_unsigned() -> None:
    api = make_api("/ws")
    for path in ("/up", "/ws/up"):
        response = api.handle("GET", path, b"", 0, time.time())
        assert (response.status, json.loads(response.body)) == (200, {"health": "OK"})


def test_trigger_reaches_subscribers_and_reports_info() -> None:
    api = make_api()
    hub = api.node.hub(APP)
    c = FakeClient(hub).connect()
    c.subscribe("presence-r", {"user_id": "u"})
    c.take()
    status, answer = call(
        api,
        "POST",
        "/apps/1/events",
        {
            "name": "e",
            "channels": ["presence-r", "other"],
            "data": "d",
            "info": "user_count,subscription_count",
        },
    )
    assert status == 200
    assert answer == {
        "channels": {
            "presence-r": {"subscription_count": 1, "user_count": 1},
            "other": {"subscription_count": 0},
        }
    }
    assert c.take() == [{"event": "e", "channel": "presence-r", "data": "d"}]


def test_batch_events() -> None:
    api = make_api()
    c = FakeClient(api.node.hub(APP)).connect()
    c.subscribe("a")
    c.take()
    batch = [{"name": f"e{i}", "channel": "a", "data": str(i)} for i in range(10)]
    assert call(api, "POST", "/apps/1/batch_events", {"batch": batch}) == (200, {})
    assert [m["event"] for m in c.take()] == [f"e{i}" for i in range(10)]
    status, answer = call(api, "POST", "/apps/1/batch_events", {"batch": batch + batch[:1]})
    assert status == 400 and "at most 10" in answer["error"]
    batch[0]["info"] = "subscription_count"
    assert call(api, "POST", "/apps/1/batch_events", {"batch": batch[:2]}) == (
        200,
        {"batch": [{"subscription_count": 1}, {}]},
    )


def test_channel_queries() -> None:
    api = make_api()
    hub = api.node.hub(APP)
    for user in ("1", "2"):
        c = FakeClient(hub).connect()
        c.subscribe("presence-room", {"user_id": user})
    FakeClient(hub).connect().subscribe("news")
    hub.publish("last", ["cache-c"], "x", None, 0)
    assert call(api, "GET", "/apps/1/channels") == (
        200,
        {"channels": {"news": {}, "presence-room": {}}},
    )
    assert call(
        api,
        "GET",
        "/apps/1/channels",
        params={"filter_by_prefix": "presence-", "info": "user_count"},
    ) == (200, {"channels": {"presence-room": {"user_count": 2}}})
    assert call(api, "GET", "/apps/1/channels", params={"info": "user_count"})[0] == 400
    assert call(
        api,
        "GET",
        "/apps/1/channels/presence-room",
        params={"info": "subscription_count,user_count"},
    ) == (200, {"occupied": True, "subscription_count": 2, "user_count": 2})
    assert call(api, "GET", "/apps/1/channels/nobody") == (200, {"occupied": False})
    assert call(api, "GET", "/apps/1/channels/news", params={"info": "user_count"})[0] == 400
    _, answer = call(api, "GET", "/apps/1/channels/cache-c", params={"info": "cache"})
    assert answer["cache"] == {"event": "last", "channel": "cache-c", "data": "x"}
    assert call(api, "GET", "/apps/1/channels/presence-room/users") == (
        200,
        {"users": [{"id": "1"}, {"id": "2"}]},
    )
    assert call(api, "GET", "/apps/1/channels/news/users")[0] == 400
    assert call(api, "GET", "/apps/1/connections") == (200, {"connections": 3})


def test_terminate_connections() -> None:
    api = make_api()
    c = FakeClient(api.node.hub(APP)).connect()
    c.subscribe("presence-x", {"user_id": "bad"})
    assert call(api, "POST", "/apps/1/users/bad/terminate_connections", {}) == (200, {})
    assert c.closed_with is not None and c.closed_with[0] == 4009


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"channel": "a", "data": "x"}, 400, "event name"),
        ({"name": "e", "data": "x"}, 400, "channel"),
        ({"name": "e", "channels": [f"c{i}" for i in range(101)], "data": "x"}, 400, "100"),
        ({"name": "e", "channel": "bad name", "data": "x"}, 400, "channel name"),
        ({"name": "e" * 201, "channel": "a", "data": "x"}, 400, "200"),
        ({"name": "e", "channel": "a", "data": "x" * 10_001}, 413, "10000"),
        ({"name": "e", "channel": "a", "data": "x", "socket_id": "nope"}, 400, "socket_id"),
        ([1, 2], 400, "object"),
    ],
)
def test_trigger_validation(body: Any, status: int, words: str) -> None:
    answer = call(make_api(), "POST", "/apps/1/events", body)
    assert answer[0] == status
    assert words in answer[1]["error"]


def test_non_json_body() -> None:
    api = make_api()
    body = b"{nope"
    response = api.handle("POST", signed("POST", "/apps/1/events", body), body, 0, time.time())
    assert response.status == 400 and b"JSON" in response.body


def test_signature_failures_are_401() -> None:
    api = make_api()
    now = time.time()
    body = b'{"name":"e","channel":"a","data":"x"}'
    good = signed("POST", "/apps/1/events", body)
    assert api.handle("POST", good, body, 0, now).status == 200
    assert api.handle("POST", good, body + b" ", 0, now).status == 401  # md5 mismatch
    tampered = good.replace("auth_signature=", "auth_signature=0")
    assert api.handle("POST", tampered, body, 0, now).status == 401
    stale = signed("POST", "/apps/1/events", body, timestamp=int(now) - 601)
    answer = api.handle("POST", stale, body, 0, now)
    assert answer.status == 401 and b"auth_timestamp" in answer.body
    wrong_key = signed("POST", "/apps/1/events", body, app=DISABLED)
    assert api.handle("POST", wrong_key, body, 0, now).status == 401
    unsigned = "/apps/1/channels"
    assert api.handle("GET", unsigned, b"", 0, now).status == 401
    # the Python SDK sends md5("") on GET requests: accepted
    get = signed("GET", "/apps/1/channels", params={"body_md5": hashlib.md5(b"").hexdigest()})
    assert api.handle("GET", get, b"", 0, now).status == 200


def test_routing_errors() -> None:
    api = make_api()
    assert call(api, "GET", "/apps/1/events")[0] == 405
    assert call(api, "GET", "/apps/1/nothing")[0] == 404
    assert call(api, "GET", "/elsewhere")[0] == 404
    assert call(api, "GET", "/apps/9/channels")[0] == 404
    assert call(api, "GET", "/apps/2/channels", app=DISABLED)[0] == 403


def test_prefix_signatures_with_and_without_prefix() -> None:
    api = make_api("/realtime")
    now = time.time()
    with_prefix = signed("GET", "/realtime/apps/1/channels")
    without = signed("GET", "/realtime/apps/1/channels", sign_path="/apps/1/channels")
    assert api.handle("GET", with_prefix, b"", 0, now).status == 200
    assert api.handle("GET", without, b"", 0, now).status == 200


def test_terminate_connections_as_the_python_sdk_sends_it() -> None:
    api = make_api()
    c = FakeClient(api.node.hub(APP)).connect()
    c.subscribe("presence-x", {"user_id": "bad"})
    assert call(api, "POST", "/users/bad/terminate_connections", {}) == (200, {})
    assert c.closed_with is not None and c.closed_with[0] == 4009
    assert call(api, "POST", "/users/bad/terminate_connections", {}, app=DISABLED)[0] == 403
