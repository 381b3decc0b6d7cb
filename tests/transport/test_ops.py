"""``/ready`` and ``/metrics``."""

from __future__ import annotations

import asyncio

from overtone.cluster.memory_broker import MemoryBus
from overtone.config import load_settings
from overtone.ops.routes import readiness
from overtone.server import Server
from overtone.server.api_routes import route_kind
from support.inprocess import BASE_ENV, start
from support.rawws import RawClient, frame
from support.servers import scaled


async def get(port: int, path: str, headers: str = "") -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n".encode())
    answer = await asyncio.wait_for(reader.read(-1), scaled(5))
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


async def test_metrics_count_connections_messages_errors_and_api_calls(live: Server) -> None:
    client = await RawClient.connect(live.port)
    await client.established()
    client.send_json({"event": "pusher:subscribe", "data": {"channel": "m"}})
    await client.recv_json()
    client.send(frame(b"not json"))
    await client.recv_json()
    client.send(frame(b"\xff"))
    assert await client.recv_close() == 1007
    client.close()
    await get(live.port, "/apps/123456/channels")  # unsigned: 401
    status, text = await get(live.port, "/metrics")
    assert status == 200
    assert 'overtone_connections_opened_total{app="123456"} 1.0' in text
    assert 'overtone_messages_received_total{app="123456"} 2.0' in text
    assert 'overtone_errors_total{app="123456",code="4200"} 1.0' in text
    assert 'overtone_protocol_closes_total{code="1007"} 1.0' in text
    assert 'overtone_http_api_requests_total{route="channels",status="401"} 1.0' in text
    assert 'overtone_http_api_seconds_bucket{le="+Inf",route="channels"} 1.0' in text
    assert "overtone_broker_connected 1.0" in text
    assert "process_resident_memory_bytes" in text


async def test_metrics_token() -> None:
    server = await start(OVERTONE_METRICS_TOKEN="s3cret")
    try:
        assert (await get(server.port, "/metrics"))[0] == 401
        assert (await get(server.port, "/metrics", "Authorization: Bearer nope\r\n"))[0] == 401
        assert (await get(server.port, "/metrics", "Authorization: Bearer s3cret\r\n"))[0] == 200
        assert (await get(server.port, "/metrics?token=s3cret"))[0] == 200
    finally:
        await server.shutdown()


async def test_ready_follows_the_broker_and_draining() -> None:
    bus = MemoryBus()
    server = Server(load_settings(BASE_ENV), broker_factory=bus.broker)
    await server.start()
    try:
        assert await get(server.port, "/ready") == (200, '{"ready":true}')
        assert (await get(server.port, "/up"))[0] == 200
        bus.set_up(False)
        status, body = await get(server.port, "/ready")
        assert status == 503 and "broker" in body
        assert (await get(server.port, "/up"))[0] == 200  # liveness is unaffected
        bus.set_up(True)
        assert (await get(server.port, "/ready"))[0] == 200
    finally:
        await server.shutdown()
    assert readiness(server)[0] == 503  # draining


async def test_metrics_count_history_and_recoveries(live: Server) -> None:
    client = await RawClient.connect(live.port)
    await client.established()
    client.send_json({"event": "pusher:subscribe", "data": {"channel": "h"}})
    position = (await client.recv_json())["position"]
    hub = next(live.node.hubs())
    hub.publish("e", ["h"], "x", None, asyncio.get_running_loop().time())
    await client.recv_json()
    client.send_json(
        {"event": "pusher:subscribe", "data": {"channel": "h2", "recover": position}}
    )  # another channel's position: cannot be recovered
    assert (await client.recv_json())["recovered"] is False
    client.send_json({"event": "pusher:subscribe", "data": {"channel": "h", "recover": position}})
    assert (await client.recv_json())["recovered"] is True
    client.close()
    text = (await get(live.port, "/metrics"))[1]
    assert 'overtone_history_streams{app="123456"} 2.0' in text
    assert 'overtone_history_events{app="123456"} 1.0' in text
    assert 'overtone_recoveries_total{app="123456"} 1.0' in text
    assert 'overtone_resyncs_total{app="123456"} 1.0' in text
    assert "overtone_history_bytes_max 6.7108864e+07" in text


def test_route_labels_come_from_a_fixed_set() -> None:
    assert route_kind("/apps/1/events") == "events"
    assert route_kind("/apps/1/batch_events?x=1") == "batch_events"
    assert route_kind("/apps/1/channels") == "channels"
    assert route_kind("/apps/1/channels/news") == "channel"
    assert route_kind("/apps/1/channels/presence-x/users") == "users"
    assert route_kind("/apps/1/channels/news/history") == "history"
    assert route_kind("/apps/1/users/7/terminate_connections") == "terminate_connections"
    assert route_kind("/prefix/up") == "up"
    # Whatever else a client asks for adds no metric series.
    for path in ("/favicon.ico", "/apps/1/x9f3", "/apps/1/channels/a/b/c", "/", "/wp-login.php"):
        assert route_kind(path) == "other", path


async def test_metrics_count_authorized_connections_when_the_app_requires_them() -> None:
    server = await start(OVERTONE_AUTHORIZED_CONNECTIONS="true")
    try:
        anonymous = await RawClient.connect(server.port)
        await anonymous.established()
        status, text = await get(server.port, "/metrics")
        assert status == 200
        assert 'overtone_authorized_connections{app="123456"} 0.0' in text
        assert 'overtone_cluster_connections{app="123456"} 1.0' in text
        anonymous.close()
    finally:
        await server.shutdown()
    plain = await start()
    try:
        assert "overtone_authorized_connections{" not in (await get(plain.port, "/metrics"))[1]
    finally:
        await plain.shutdown()
