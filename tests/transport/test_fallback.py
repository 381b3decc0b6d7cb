"""pusher-js's HTTP fallback transports against the in-process server, spoken by hand:
the frames pusher-js parses, sessions that behave like WebSockets, and bad input."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from overtone.config import load_settings
from overtone.server import Server
from support.fakes import auth_for_secret
from support.fallback_client import Client, messages, read_body, request
from support.inprocess import BASE_ENV, start
from support.servers import scaled
from support.signing import signed_target

FAST = {"OVERTONE_HTTP_SESSION_TIMEOUT": "1.5", "OVERTONE_HTTP_POLL_TIMEOUT": "1"}


async def publish(server: Server, channel: str, name: str, data: str) -> int:
    body = json.dumps({"name": name, "channel": channel, "data": data}).encode()
    target = signed_target("POST", "/apps/123456/events", body)
    status, head, reader, writer = await request(server.port, "POST", target, body)
    await read_body(reader, head)
    writer.close()
    return status


async def api_get(server: Server, path: str) -> dict[str, object]:
    status, head, reader, writer = await request(server.port, "GET", signed_target("GET", path))
    body = await read_body(reader, head)
    writer.close()
    assert status == 200, body
    document: dict[str, object] = json.loads(body)
    return document


async def eventually(check: object, seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + scaled(seconds)
    while not check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.02)


async def test_polling_opens_a_session_and_delivers_events_in_order(live: Server) -> None:
    client = Client(live.port)
    status, head, body = await client.poll()
    assert status == 200 and head["content-type"].startswith("application/javascript")
    assert head["cache-control"] == "no-store"
    opened, established, rest = body.split("\n")
    assert opened == "o" and rest == ""
    [message] = messages(established)
    assert message["event"] == "pusher:connection_established"
    socket_id = json.loads(message["data"])["socket_id"]
    assert (await client.send({"event": "pusher:subscribe", "data": {"channel": "news"}}))[0] == 204
    status, _, body = await client.poll()
    assert messages(body.strip())[0]["event"] == "pusher_internal:subscription_succeeded"
    waiting = asyncio.ensure_future(client.poll())
    await asyncio.sleep(0.1)
    assert not waiting.done()  # nothing queued: the poll waits
    for n in range(3):
        assert await publish(live, "news", "e", str(n)) == 200
    status, _, body = await waiting
    assert status == 200
    received = [m["data"] for m in messages(body.strip())]
    while len(received) < 3:  # the first poll may be answered before the later events
        received += [m["data"] for m in messages((await client.poll())[2].strip())]
    assert received == ["0", "1", "2"]
    connections = await api_get(live, "/apps/123456/connections")
    assert connections["connections"] == 1
    assert socket_id.count(".") == 1


async def test_streaming_sends_frames_as_they_come_on_one_open_response(live: Server) -> None:
    client = Client(live.port)
    status, head, stream = await client.stream()
    try:
        assert status == 200 and head["transfer-encoding"] == "chunked"
        assert head["x-accel-buffering"] == "no"
        assert await stream.line() == "o"
        assert messages(await stream.line())[0]["event"] == "pusher:connection_established"
        await client.send({"event": "pusher:subscribe", "data": {"channel": "news"}})
        assert messages(await stream.line())[0]["event"] == "pusher_internal:subscription_succeeded"
        await publish(live, "news", "e", "first")
        [event] = messages(await stream.line())
        assert (event["event"], event["channel"], event["data"]) == ("e", "news", "first")
        # Client events go through xhr_send like any message: a ping is answered.
        await client.send({"event": "pusher:ping", "data": {}})
        assert messages(await stream.line())[0]["event"] == "pusher:pong"
    finally:
        stream.close()


async def test_a_new_receive_request_takes_over_without_a_second_open(live: Server) -> None:
    client = Client(live.port)
    _, _, first = await client.stream()
    assert await first.line() == "o"
    await first.line()
    await client.send({"event": "pusher:subscribe", "data": {"channel": "news"}})
    await first.line()
    # pusher-js reopens the stream after 256 KB: the same session, no "o", nothing lost.
    _, _, second = await client.stream()
    try:
        assert await first.line() == ""  # the older response is ended
        await publish(live, "news", "e", "after")
        assert messages(await second.line())[0]["data"] == "after"
    finally:
        first.close()
        second.close()


async def test_what_is_queued_between_polls_waits_for_the_next_one() -> None:
    server = await start(**FAST)
    try:
        client = Client(server.port)
        await client.poll()
        await client.send({"event": "pusher:subscribe", "data": {"channel": "news"}})
        await client.poll()
        for n in range(5):
            await publish(server, "news", "e", str(n))
        _, _, body = await client.poll()
        assert [m["data"] for m in messages(body.strip())] == ["0", "1", "2", "3", "4"]
        _, _, body = await client.poll()  # nothing queued: a heartbeat after the poll timeout
        assert body == "h\n"
    finally:
        await server.shutdown()


async def test_a_client_that_stops_polling_leaves_presence_after_the_session_timeout() -> None:
    server = await start(**FAST)
    try:
        client = Client(server.port)
        _, _, body = await client.poll()
        socket_id = json.loads(messages(body.split("\n")[1])[0]["data"])["socket_id"]
        channel_data = json.dumps({"user_id": "ada"})
        subscribe = {
            "event": "pusher:subscribe",
            "data": {
                "channel": "presence-room",
                "channel_data": channel_data,
                "auth": auth_for_secret(
                    "test-key", "test-secret", socket_id, "presence-room", channel_data
                ),
            },
        }
        await client.send(subscribe)
        _, _, body = await client.poll()
        assert messages(body.strip())[0]["event"] == "pusher_internal:subscription_succeeded"
        users = await api_get(server, "/apps/123456/channels/presence-room/users")
        assert users["users"] == [{"id": "ada"}]
        # No more requests: within the session timeout (+ a sweep), the member is gone.
        await asyncio.sleep(scaled(1.5) + 1.5)
        users = await api_get(server, "/apps/123456/channels/presence-room/users")
        assert users["users"] == []
        assert (await api_get(server, "/apps/123456/connections"))["connections"] == 0
        status, _, answer = await client.send({"event": "pusher:ping", "data": {}})
        assert status == 404 and b"expired" in answer
    finally:
        await server.shutdown()


async def test_refusals_come_as_frames_pusher_js_reads(live: Server) -> None:
    unknown = Client(live.port, key="nope")
    status, _, body = await unknown.poll()
    opened, error, close, rest = body.split("\n")
    assert status == 200 and opened == "o" and rest == ""
    assert messages(error)[0]["data"]["code"] == 4001
    assert json.loads(close[1:])[0] == 4001
    old = Client(live.port)
    old.query = "?protocol=99&client=js&version=1.0"
    _, _, body = await old.poll()
    assert json.loads(body.split("\n")[2][1:])[0] == 4007
    # A refused stream is a complete response: pusher-js reads the same frames from it.
    target = Client(live.port, key="nope").target("xhr_streaming")
    status, head, reader, writer = await request(live.port, "POST", target)
    try:
        lines = (await read_body(reader, head)).decode().split("\n")
    finally:
        writer.close()
    assert lines[0] == "o" and lines[2].startswith("c[4001") and lines[3] == ""


async def test_bad_sends_get_clear_errors_and_disturb_nothing(live: Server) -> None:
    client = Client(live.port)
    status, _, answer = await client.send({"event": "pusher:ping"})
    assert status == 404 and b"Unknown or expired session" in answer
    await client.poll()
    assert (await client.send(raw=b"not json"))[0] == 400
    assert (await client.send(raw=b'{"event":"x"}'))[0] == 400
    assert (await client.send(raw=b"[1, 2]"))[0] == 400
    big = json.dumps(["x" * 20_000]).encode()
    status, _, answer = await client.send(raw=big)
    assert status == 413 and b"larger than" in answer
    # The session still works.
    assert (await client.send({"event": "pusher:ping", "data": {}}))[0] == 204
    _, _, body = await client.poll()
    assert messages(body.strip())[0]["event"] == "pusher:pong"
    # Not a session path, another method.
    status, _, _, writer = await request(live.port, "POST", "/pusher/app/test-key/x")
    writer.close()
    assert status == 404
    status, _, _, writer = await request(live.port, "GET", client.target("xhr"))
    writer.close()
    assert status == 405


async def test_cors_preflight_follows_the_apps_allowed_origins() -> None:
    server = await start(OVERTONE_APP_ALLOWED_ORIGINS="https://clinic.example")
    try:
        client = Client(server.port)
        ok = {"Origin": "https://clinic.example", "Access-Control-Request-Method": "POST"}
        status, head, _, writer = await request(
            server.port, "OPTIONS", client.target("xhr"), headers=ok
        )
        writer.close()
        assert status == 204
        assert head["access-control-allow-origin"] == "https://clinic.example"
        assert "POST" in head["access-control-allow-methods"]
        assert "content-type" in head["access-control-allow-headers"].lower()
        bad = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        status, head, _, writer = await request(
            server.port, "OPTIONS", client.target("xhr"), headers=bad
        )
        writer.close()
        assert status == 403 and "access-control-allow-origin" not in head
        status, head, body = await client.poll(headers={"Origin": "https://clinic.example"})
        assert head["access-control-allow-origin"] == "https://clinic.example"
        refused = Client(server.port)
        _, head, body = await refused.poll(headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in head
        assert json.loads(body.split("\n")[2][1:])[0] == 4009
    finally:
        await server.shutdown()


async def test_a_client_that_never_reads_is_dropped_alone() -> None:
    server = await start(**FAST, OVERTONE_MAX_WRITE_BUFFER="16384")
    try:
        slow, fine = Client(server.port), Client(server.port)
        for client in (slow, fine):
            await client.poll()
            await client.send({"event": "pusher:subscribe", "data": {"channel": "news"}})
            await client.poll()
        for n in range(40):  # 40 x ~600 bytes queued for each, past 16 KB
            await publish(server, "news", "e", f"{n:03d}" + "x" * 500)
            if n % 5 == 0:
                _, _, body = await fine.poll()
                assert messages(body.strip())
        _, _, body = await slow.poll()
        assert "c[4100" in body
        _, _, body = await fine.poll()
        assert messages(body.strip())[-1]["data"].startswith("039")
    finally:
        await server.shutdown()


async def test_the_session_path_stays_out_of_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server = Server(load_settings(BASE_ENV, debug=True))
    await server.start()
    try:
        client = Client(server.port)
        await client.poll()
        await client.send({"event": "pusher:subscribe", "data": {"channel": "news"}})
        await client.poll()
    finally:
        await server.shutdown()
    session_id = client.base.rsplit("/", 1)[1]
    assert "connected to app" in caplog.text
    assert session_id not in caplog.text


async def test_metrics_and_the_dashboard_name_the_transport() -> None:
    server = await start(OVERTONE_DASHBOARD_PASSWORD="a-long-dashboard-password")
    try:
        polling, streaming = Client(server.port), Client(server.port)
        await polling.poll()
        _, _, stream = await streaming.stream()
        assert await stream.line() == "o"
        status, head, reader, writer = await request(server.port, "GET", "/metrics")
        text = (await read_body(reader, head)).decode()
        writer.close()
        assert status == 200
        assert 'overtone_transport_connections{transport="xhr_polling"} 1.0' in text
        assert 'overtone_transport_connections{transport="xhr_streaming"} 1.0' in text
        assert 'overtone_transport_connections{transport="ws"} 0.0' in text
        assert server.dashboard is not None
        [node] = server.dashboard.overview(False)["nodes"]
        assert node["transports"] == {"ws": 0, "xhr_streaming": 1, "xhr_polling": 1}
        assert node["connections"] == 2
        stream.close()
    finally:
        await server.shutdown()


async def test_recovery_replays_missed_events_to_a_fallback_session(live: Server) -> None:
    first = Client(live.port)
    await first.poll()
    await first.send({"event": "pusher:subscribe", "data": {"channel": "news"}})
    _, _, body = await first.poll()
    position = messages(body.strip())[0]["position"]
    for n in range(5):  # missed: the client is gone
        await publish(live, "news", "e", str(n))
    again = Client(live.port)
    await again.poll()
    recover = {"epoch": position["epoch"], "offset": position["offset"]}
    subscribe = {"event": "pusher:subscribe", "data": {"channel": "news", "recover": recover}}
    await again.send(subscribe)
    received: list[dict[str, object]] = []
    while len(received) < 6:  # the answer, then the five missed events (written together)
        received += messages((await again.poll())[2].strip())
    assert received[0]["recovered"] is True
    assert [m["data"] for m in received[1:]] == ["0", "1", "2", "3", "4"]


async def test_subscription_counts_reach_a_fallback_session() -> None:
    server = await start(OVERTONE_SUBSCRIPTION_COUNT="true")
    try:
        client = Client(server.port)
        await client.poll()
        await client.send({"event": "pusher:subscribe", "data": {"channel": "news"}})
        _, _, body = await client.poll()
        # subscription_succeeded and the count leave in one write: two frames, in order
        first = messages(body.strip())
        assert [m["event"] for m in first] == [
            "pusher_internal:subscription_succeeded",
            "pusher_internal:subscription_count",
        ]
        assert first[1]["data"] == '{"subscription_count":1}'
        other = Client(server.port)
        await other.poll()
        await other.send({"event": "pusher:subscribe", "data": {"channel": "news"}})
        counts: list[object] = []
        for _ in range(5):
            _, _, body = await client.poll()
            counts += [
                json.loads(m["data"])["subscription_count"]
                for m in messages(body.strip())
                if m["event"] == "pusher_internal:subscription_count"
            ]
            if counts:
                break
        assert counts == [2]
    finally:
        await server.shutdown()
