"""Webhooks delivered to a real local endpoint, validated by the PyPI and npm Pusher SDKs."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pusher
import pytest
import pytest_asyncio

from overtone.cluster.memory_broker import MemoryBus
from overtone.config import load_settings
from overtone.server import Server, webhooks
from support.fakes import auth_for_secret
from support.inprocess import BASE_ENV
from support.rawws import RawClient, frame
from support.servers import APP_ID, APP_KEY, APP_SECRET, scaled
from support.webhook_sink import WebhookSink

E2E = Path(__file__).parent.parent / "e2e"


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webhooks, "FIRST_RETRY", 0.05)


@pytest_asyncio.fixture
async def hooked(sink: WebhookSink) -> AsyncIterator[Server]:
    server = Server(load_settings({**BASE_ENV, "OVERTONE_WEBHOOK_URL": sink.url}))
    await server.start()
    yield server
    await server.shutdown()


async def until(check: Callable[[], bool], timeout: float = 5) -> None:
    deadline = asyncio.get_running_loop().time() + scaled(timeout)
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def join(port: int, channel: str, user: str | None = None) -> RawClient:
    client = await RawClient.connect(port)
    socket_id = await client.established()
    data: dict[str, Any] = {"channel": channel}
    if channel.startswith(("private-", "presence-")):
        channel_data = json.dumps({"user_id": user}) if user else None
        data["auth"] = auth_for_secret(APP_KEY, APP_SECRET, socket_id, channel, channel_data)
        if channel_data:
            data["channel_data"] = channel_data
    client.send_json({"event": "pusher:subscribe", "data": data})
    await client.recv_json()
    client.socket_id = socket_id  # type: ignore[attr-defined]
    return client


def sdk() -> pusher.Pusher:
    return pusher.Pusher(app_id=APP_ID, key=APP_KEY, secret=APP_SECRET)


async def test_lifecycle_events_signed_and_valid(hooked: Server, sink: WebhookSink) -> None:
    a = await join(hooked.port, "presence-room", "alice")
    b = await join(hooked.port, "presence-room", "bob")
    await a.recv_json()  # member_added bob
    a.send_json({"event": "client-typing", "channel": "presence-room", "data": {"on": True}})
    await b.recv_json()
    c = await join(hooked.port, "cache-prices")
    await c.recv_json()  # cache_miss
    for client in (a, b, c):
        client.close()
    await until(lambda: len(sink.events()) >= 8)
    names = [(e["name"], e.get("channel"), e.get("user_id")) for e in sink.events()]
    assert names[:3] == [
        ("channel_occupied", "presence-room", None),
        ("member_added", "presence-room", "alice"),
        ("member_added", "presence-room", "bob"),
    ]
    client_event = next(e for e in sink.events() if e["name"] == "client_event")
    assert client_event == {
        "name": "client_event",
        "channel": "presence-room",
        "event": "client-typing",
        "data": '{"on":true}',
        "socket_id": a.socket_id,  # type: ignore[attr-defined]
        "user_id": "alice",
    }
    assert ("cache_miss", "cache-prices", None) in names
    assert ("channel_vacated", "presence-room", None) in names
    assert ("member_removed", "presence-room", "bob") in names
    for request in sink.requests:
        assert request.headers["X-Pusher-Key"] == APP_KEY
        body = sdk().validate_webhook(
            request.headers["X-Pusher-Key"], request.headers["X-Pusher-Signature"], request.body
        )
        assert body is not None and body["events"]
    forged = sink.requests[0]
    assert (
        sdk().validate_webhook(APP_KEY, forged.headers["X-Pusher-Signature"], forged.body + b" ")
        is None
    )
    if shutil.which("node") and (E2E / "node_modules" / "pusher").exists():
        payload = [{"headers": r.headers, "body": r.body.decode()} for r in sink.requests]
        payload.append({"headers": sink.requests[0].headers, "body": "{}"})
        result = subprocess.run(
            ["node", str(Path(__file__).parent / "validate_webhook.mjs")],
            input=json.dumps(payload),
            capture_output=True,
            text=True,
            timeout=scaled(30),
            env={
                "OVERTONE_APP_ID": APP_ID,
                "OVERTONE_APP_KEY": APP_KEY,
                "OVERTONE_APP_SECRET": APP_SECRET,
                "PATH": "/usr/bin:/bin:/usr/local/bin",
            },
            check=True,
        )
        verdicts = json.loads(result.stdout)
        assert verdicts == [True] * len(sink.requests) + [False]


async def test_a_burst_is_batched_into_one_request(hooked: Server, sink: WebhookSink) -> None:
    client = await RawClient.connect(hooked.port)
    await client.established()
    burst = b"".join(
        frame(json.dumps({"event": "pusher:subscribe", "data": {"channel": f"room-{i}"}}).encode())
        for i in range(20)
    )
    client.send(burst)  # one read on the server: twenty channel_occupied events at once
    for _ in range(20):
        await client.recv_json()
    await until(lambda: len(sink.events()) == 20)
    assert len(sink.requests) == 1
    assert [e["channel"] for e in sink.events()] == [f"room-{i}" for i in range(20)]
    client.close()


async def test_failures_are_retried(sink: WebhookSink) -> None:
    sink.fail_first = 2
    server = Server(load_settings({**BASE_ENV, "OVERTONE_WEBHOOK_URL": sink.url}))
    await server.start()
    try:
        client = await join(server.port, "retry-me")
        await until(lambda: len(sink.requests) == 3)
        bodies = [json.loads(r.body) for r in sink.requests]
        assert all(
            b["events"] == [{"name": "channel_occupied", "channel": "retry-me"}] for b in bodies
        )
        assert bodies[2]["time_ms"] >= bodies[0]["time_ms"]  # stamped anew per attempt
        webhooks = server.webhooks
        assert webhooks is not None
        await until(lambda: webhooks.sent == 1)  # counted once the sink's answer is read
        client.close()
    finally:
        await server.shutdown()


async def test_event_filter(sink: WebhookSink) -> None:
    env = {
        **BASE_ENV,
        "OVERTONE_WEBHOOK_URL": sink.url,
        "OVERTONE_WEBHOOK_EVENTS": "channel_vacated",
    }
    server = Server(load_settings(env))
    await server.start()
    try:
        client = await join(server.port, "filtered")
        client.send_json({"event": "pusher:unsubscribe", "data": {"channel": "filtered"}})
        await until(lambda: len(sink.events()) == 1)
        assert sink.events() == [{"name": "channel_vacated", "channel": "filtered"}]
        client.close()
    finally:
        await server.shutdown()


async def test_cluster_sends_each_event_once(sink: WebhookSink) -> None:
    bus = MemoryBus()
    env = {**BASE_ENV, "OVERTONE_WEBHOOK_URL": sink.url}
    nodes = [Server(load_settings(env), broker_factory=bus.broker) for _ in range(3)]
    for node in nodes:
        await node.start()
    try:
        first = await join(nodes[0].port, "presence-c", "u1")
        hub = next(nodes[1].node.hubs())
        await until(lambda: hub.subscription_count("presence-c") == 1)
        second = await join(nodes[1].port, "presence-c", "u1")
        third = await join(nodes[2].port, "presence-c", "u2")
        await asyncio.sleep(0.3)
        for client in (first, second, third):
            client.close()
        await until(lambda: any(e["name"] == "channel_vacated" for e in sink.events()))
        await asyncio.sleep(0.3)
        names = sorted((e["name"], e.get("user_id", "")) for e in sink.events())
        assert names == [
            ("channel_occupied", ""),
            ("channel_vacated", ""),
            ("member_added", "u1"),
            ("member_added", "u2"),
            ("member_removed", "u1"),
            ("member_removed", "u2"),
        ]
    finally:
        for node in nodes:
            await node.shutdown()
