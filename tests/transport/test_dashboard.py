"""The dashboard over real sockets: access, documents, the feed, the actions."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from overtone.protocol.signatures import sign
from overtone.server import Server
from support.http import request
from support.inprocess import start
from support.rawws import RawClient
from support.servers import APP_ID, APP_KEY, APP_SECRET, scaled
from support.signing import signed_target

PASSWORD = "s3cret-dashboard-pw"
AUTH = b"Authorization: Basic " + base64.b64encode(f"overtone:{PASSWORD}".encode())
ACTION = AUTH + b"\r\nX-Overtone-Dashboard: 1\r\nContent-Type: application/json"


@pytest_asyncio.fixture
async def dash() -> AsyncIterator[Server]:
    server = await start(OVERTONE_DASHBOARD_PASSWORD=PASSWORD)
    yield server
    await server.shutdown()


async def get_json(port: int, path: str) -> Any:
    status, _, body = await request(port, b"GET " + path.encode() + b" HTTP/1.1", AUTH)
    assert status == 200, body
    return json.loads(body)


async def action(port: int, route: str, document: dict[str, Any]) -> tuple[int, Any]:
    status, _, body = await request(
        port,
        b"POST /dashboard/api/" + route.encode() + b" HTTP/1.1",
        ACTION,
        json.dumps(document).encode(),
    )
    return status, json.loads(body)


class Feed:
    """A reader of the dashboard's server-sent events."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Feed:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"GET /dashboard/api/feed HTTP/1.1\r\nHost: 127.0.0.1\r\n" + AUTH + b"\r\n\r\n"
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), scaled(5))
        assert head.startswith(b"HTTP/1.1 200"), head
        assert b"text/event-stream" in head
        return cls(reader, writer)

    async def next(self) -> tuple[str, Any]:
        while True:
            block = await asyncio.wait_for(self.reader.readuntil(b"\n\n"), scaled(5))
            fields = dict(
                line.split(": ", 1) for line in block.decode().strip().split("\n") if ": " in line
            )
            if "event" in fields:
                return fields["event"], json.loads(fields["data"])

    async def until(self, predicate: Any, tries: int = 60) -> list[dict[str, Any]]:
        """Console entries until one satisfies ``predicate``; all seen so far."""
        seen: list[dict[str, Any]] = []
        for _ in range(tries):
            kind, document = await self.next()
            if kind == "console":
                seen += document["entries"]
                if any(predicate(entry) for entry in document["entries"]):
                    return seen
        raise AssertionError(f"not seen in {seen}")

    def close(self) -> None:
        self.writer.close()


async def test_off_without_a_password_everything_is_404(live: Server) -> None:
    for path in (b"/dashboard", b"/dashboard/", b"/dashboard/api/overview", b"/dashboard/x"):
        status, _, body = await request(live.port, b"GET " + path + b" HTTP/1.1", AUTH)
        assert status == 404, path
        assert b"OVERTONE_DASHBOARD_PASSWORD" in body


async def test_without_credentials_no_page_is_given(dash: Server) -> None:
    for path in (b"/dashboard/", b"/dashboard/api/overview", b"/dashboard/static/dashboard.js"):
        status, headers, body = await request(dash.port, b"GET " + path + b" HTTP/1.1")
        assert status == 401
        assert headers["www-authenticate"].startswith('Basic realm="overtone dashboard"')
        assert b"<html" not in body.lower() and b"apps" not in body
    wrong = b"Authorization: Basic " + base64.b64encode(b"overtone:wrong")
    status, _, _ = await request(dash.port, b"GET /dashboard/ HTTP/1.1", wrong)
    assert status == 401


async def test_repeated_failures_are_turned_away_with_429(dash: Server) -> None:
    wrong = b"Authorization: Basic " + base64.b64encode(b"overtone:guess")
    statuses = [
        (await request(dash.port, b"GET /dashboard/api/overview HTTP/1.1", wrong))[0]
        for _ in range(6)
    ]
    assert statuses == [401] * 5 + [429]
    status, headers, _ = await request(dash.port, b"GET /dashboard/api/overview HTTP/1.1", AUTH)
    assert status == 429 and int(headers["retry-after"]) > 0
    # Behind a local proxy, the forwarded address is the one counted.
    proxied = AUTH + b"\r\nX-Forwarded-For: 203.0.113.77"
    status, _, _ = await request(dash.port, b"GET /dashboard/api/overview HTTP/1.1", proxied)
    assert status == 200


async def test_the_bare_path_redirects_relatively(dash: Server) -> None:
    status, headers, _ = await request(dash.port, b"GET /dashboard HTTP/1.1", AUTH)
    assert (status, headers["location"]) == (301, "dashboard/")
    status, _, body = await request(dash.port, b"GET /dashboard/nothing HTTP/1.1", AUTH)
    assert status == 404 and b"nothing" in body
    status, _, _ = await request(dash.port, b"DELETE /dashboard/api/overview HTTP/1.1", AUTH)
    assert status == 405


async def test_overview_counts_connections_subscriptions_and_members(dash: Server) -> None:
    client = await RawClient.connect(dash.port)
    socket_id = await client.established()
    client.send_json({"event": "pusher:subscribe", "data": {"channel": "news"}})
    channel = "presence-room"
    data = json.dumps({"user_id": "u7", "user_info": {"name": "Ana"}})
    auth = f"{APP_KEY}:{sign(APP_SECRET, f'{socket_id}:{channel}:{data}')}"
    client.send_json(
        {
            "event": "pusher:subscribe",
            "data": {"channel": channel, "auth": auth, "channel_data": data},
        }
    )
    for _ in range(2):
        assert (await client.recv_json())["event"] == "pusher_internal:subscription_succeeded"
    overview = await get_json(dash.port, "/dashboard/api/overview")
    [app] = overview["apps"]
    assert app["id"] == APP_ID
    assert (app["connections"], app["channels"], app["subscriptions"]) == (1, 2, 2)
    assert app["presence_users"] == 1
    assert overview["nodes"][0]["self"] is True and overview["nodes"][0]["connections"] == 1
    assert overview["cluster"] is False and overview["webhooks"] is None
    assert set(overview["series"]["apps"][APP_ID]) >= {"connections", "messages_out"}
    listed = await get_json(dash.port, f"/dashboard/api/channels?app={APP_ID}&filter=room")
    assert listed == {
        "channels": [{"name": channel, "subscriptions": 1, "users": 1}],
        "total": 1,
        "truncated": False,
    }
    detail = await get_json(dash.port, f"/dashboard/api/channel?app={APP_ID}&name={channel}")
    assert detail["members"] == [{"id": "u7", "info": {"name": "Ana"}}]
    assert detail["local_subscribers"] == [socket_id]
    client.close()


async def test_channel_detail_shows_history_and_bad_queries_are_400(dash: Server) -> None:
    body = json.dumps({"name": "tick", "channel": "feed", "data": '{"n":1}'}).encode()
    status, _, _ = await request(
        dash.port,
        b"POST " + signed_target("POST", f"/apps/{APP_ID}/events", body).encode() + b" HTTP/1.1",
        b"Content-Type: application/json",
        body,
    )
    assert status == 200
    detail = await get_json(dash.port, f"/dashboard/api/channel?app={APP_ID}&name=feed")
    assert detail["history"]["events"] == [{"offset": 1, "event": "tick", "data": '{"n":1}'}]
    for query, expected in (
        ("?name=feed", 400),
        (f"?app={APP_ID}", 400),
        ("?app=nope&name=feed", 404),
    ):
        status, _, _ = await request(
            dash.port, f"GET /dashboard/api/channel{query} HTTP/1.1".encode(), AUTH
        )
        assert status == expected, query


async def test_the_feed_streams_overview_and_console(dash: Server) -> None:
    hub = next(iter(dash.node.hubs()), None)
    assert hub is None or hub.trace is None  # nobody watches: nothing is traced
    feed = await Feed.open(dash.port)
    kind, first = await feed.next()
    assert kind == "overview" and first["apps"][0]["id"] == APP_ID
    client = await RawClient.connect(dash.port)
    socket_id = await client.established()
    client.send_json(
        {"event": "pusher:subscribe", "data": {"channel": "private-x", "auth": "k:bad"}}
    )
    seen = await feed.until(lambda e: e["kind"] == "subscription_refused")
    connected = [e for e in seen if e["kind"] == "connected"]
    assert connected and connected[0]["socket_id"] == socket_id
    refused = next(e for e in seen if e["kind"] == "subscription_refused")
    assert refused["channel"] == "private-x" and refused["code"] == 401
    assert refused["message"]
    body = json.dumps({"name": "alert", "channel": "ops", "data": '{"level":3}'}).encode()
    await request(
        dash.port,
        b"POST " + signed_target("POST", f"/apps/{APP_ID}/events", body).encode() + b" HTTP/1.1",
        b"Content-Type: application/json",
        body,
    )
    seen = await feed.until(lambda e: e["kind"] == "api_event")
    event = next(e for e in seen if e["kind"] == "api_event")
    assert (event["channel"], event["event"], event["data"]) == ("ops", "alert", '{"level":3}')
    client.close()
    seen = await feed.until(lambda e: e["kind"] == "disconnected")
    assert next(e for e in seen if e["kind"] == "disconnected")["socket_id"] == socket_id
    kinds = set()
    for _ in range(8):  # an overview arrives at least once a second
        kind, document = await feed.next()
        kinds.add(kind)
        if kind == "overview":
            assert "sample" in document
            break
    assert "overview" in kinds
    feed.close()
    for _ in range(50):
        await asyncio.sleep(0.02)
        if not dash.dashboard or not dash.dashboard.feeds:
            break
    assert dash.dashboard is not None and not dash.dashboard.feeds
    assert all(h.trace is None for h in dash.node.hubs())


async def test_test_event_reaches_a_subscriber(dash: Server) -> None:
    client = await RawClient.connect(dash.port)
    await client.established()
    client.send_json({"event": "pusher:subscribe", "data": {"channel": "news"}})
    await client.recv_json()
    status, answer = await action(
        dash.port, "trigger", {"app": APP_ID, "channel": "news", "event": "hello", "data": {"x": 1}}
    )
    assert (status, answer) == (200, {"ok": True, "channel": "news", "event": "hello"})
    message = await client.recv_json()
    assert (message["event"], message["channel"], json.loads(message["data"])) == (
        "hello",
        "news",
        {"x": 1},
    )
    client.close()


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        (AUTH, b'{"app":"123456","channel":"a","event":"e"}', 403),  # no action header
        (ACTION + b"\r\nOrigin: https://evil.example", b'{"app":"123456"}', 403),
        (ACTION, b"not json", 400),
        (ACTION, b'{"app":"123456","event":"e"}', 400),
        (ACTION, b'{"app":"999","channel":"a","event":"e"}', 404),
        (ACTION, b'{"app":"123456","channel":"bad name!","event":"e"}', 400),
    ],
)
async def test_bad_actions_are_refused(
    dash: Server, headers: bytes, body: bytes, status: int
) -> None:
    answer, _, content = await request(
        dash.port, b"POST /dashboard/api/trigger HTTP/1.1", headers, body
    )
    assert answer == status, content
    assert json.loads(content)["error"]


async def test_terminate_closes_the_users_connections(dash: Server) -> None:
    client = await RawClient.connect(dash.port)
    socket_id = await client.established()
    user = json.dumps({"id": "u9"})
    client.send_json(
        {
            "event": "pusher:signin",
            "data": {
                "user_data": user,
                "auth": f"{APP_KEY}:{sign(APP_SECRET, f'{socket_id}::user::{user}')}",
            },
        }
    )
    assert (await client.recv_json())["event"] == "pusher:signin_success"
    status, answer = await action(dash.port, "terminate", {"app": APP_ID, "user_id": "u9"})
    assert (status, answer) == (200, {"ok": True, "user_id": "u9"})
    assert await client.recv_close() == 4009
    client.close()
    status, _ = await action(dash.port, "terminate", {"app": APP_ID})
    assert status == 400


async def test_no_answer_contains_the_app_secret(dash: Server) -> None:
    feed = await Feed.open(dash.port)
    await feed.next()
    bodies = [
        (await request(dash.port, b"GET " + path + b" HTTP/1.1", AUTH))[2]
        for path in (
            b"/dashboard/",
            b"/dashboard/static/dashboard.js",
            b"/dashboard/api/overview",
            f"/dashboard/api/channels?app={APP_ID}".encode(),
        )
    ]
    await action(dash.port, "trigger", {"app": APP_ID, "channel": "c", "event": "e"})
    await feed.until(lambda e: e["kind"] == "dashboard_action")
    for body in bodies:
        assert APP_SECRET.encode() not in body
    feed.close()


async def test_overview_shows_the_hosted_pusher_settings_and_authorized_connections() -> None:
    server = await start(
        OVERTONE_DASHBOARD_PASSWORD=PASSWORD,
        OVERTONE_SUBSCRIPTION_COUNT="true",
        OVERTONE_AUTHORIZED_CONNECTIONS="true",
        OVERTONE_AUTHORIZATION_TIMEOUT="20",
        REVERB_APP_MAX_CONNECTIONS="50",
    )
    try:
        client = await RawClient.connect(server.port)
        socket_id = await client.established()
        auth = f"{APP_KEY}:{sign(APP_SECRET, f'{socket_id}:private-x')}"
        client.send_json(
            {"event": "pusher:subscribe", "data": {"channel": "private-x", "auth": auth}}
        )
        assert (await client.recv_json())["event"] == "pusher_internal:subscription_succeeded"
        anonymous = await RawClient.connect(server.port)  # not authorized
        await anonymous.established()
        [app] = (await get_json(server.port, "/dashboard/api/overview"))["apps"]
        client.close()
        anonymous.close()
        assert app["settings"] == {
            "max_connections": 50,
            "subscription_count": True,
            "authorized_connections": True,
            "authorization_timeout": 20.0,
        }
        assert (app["connections"], app["authorized"]) == (2, 1)
    finally:
        await server.shutdown()
    plain = await start(OVERTONE_DASHBOARD_PASSWORD=PASSWORD)
    try:
        [app] = (await get_json(plain.port, "/dashboard/api/overview"))["apps"]
        assert app["settings"]["subscription_count"] is False and app["authorized"] is None
    finally:
        await plain.shutdown()
