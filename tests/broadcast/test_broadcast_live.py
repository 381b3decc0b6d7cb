"""Sync and async broadcasters against the real ``overtone start``, seen by raw clients."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import nacl.secret

from broadcast.conftest import Connect
from broadcast.helpers import (
    config_for,
    next_message,
    no_message,
    registry_for,
    sign_in,
    subscribe,
)
from overtone.broadcast import AsyncBroadcaster, BroadcastConfig, Broadcaster
from support.servers import APP_KEY, ServerProcess, start_server

ANA = {"id": 7, "name": "Ana", "orders": ["42"]}


async def test_sync_trigger_reaches_subscribers_except_the_excluded_socket(
    server: ServerProcess, ws: Connect
) -> None:
    broadcaster = Broadcaster(config_for(server), strict=True)
    first, _ = await ws(server.port)
    second, second_id = await ws(server.port)
    for client in (first, second):
        await subscribe(client, "news")
    answer = await asyncio.to_thread(broadcaster.trigger, "news", "update", {"title": "héllo"})
    assert answer == {}
    for client in (first, second):
        message = await next_message(client)
        assert isinstance(message.pop("offset"), int)  # history is on by default
        assert message == {"event": "update", "channel": "news", "data": '{"title": "héllo"}'}
    await asyncio.to_thread(broadcaster.trigger, ["news", "other"], "quiet", "x", second_id)
    assert (await next_message(first))["event"] == "quiet"
    await no_message(second)
    broadcaster.close()


async def test_sync_batch_info_and_presence_users(server: ServerProcess, ws: Connect) -> None:
    config = config_for(server)
    broadcaster = Broadcaster(config, strict=True)
    channels = registry_for(config)
    client, socket_id = await ws(server.port)
    auth = channels.authorize("presence-room.lobby", socket_id, ANA)
    assert auth is not None
    await subscribe(client, "presence-room.lobby", auth)
    await subscribe(client, "news")
    events: list[dict[str, Any]] = [
        {"channel": "news", "name": "one", "data": {"n": 1}},
        {"channel": "presence-room.lobby", "name": "two", "data": "plain"},
    ]
    assert await asyncio.to_thread(broadcaster.trigger_batch, events) == {}
    assert [(await next_message(client))["event"] for _ in range(2)] == ["one", "two"]
    assert events[0]["data"] == {"n": 1}  # the caller's events are not rewritten
    assert broadcaster.users_info("presence-room.lobby") == {"users": [{"id": "7"}]}
    assert broadcaster.channel_info("presence-room.lobby", ["user_count"]) == {
        "occupied": True,
        "user_count": 1,
    }
    assert broadcaster.channels_info("presence-", ["user_count"]) == {
        "channels": {"presence-room.lobby": {"user_count": 1}}
    }
    assert broadcaster.channel_info("empty") == {"occupied": False}


async def test_send_to_user_and_terminate_user_connections(
    server: ServerProcess, ws: Connect
) -> None:
    config = config_for(server)
    broadcaster = Broadcaster(config, strict=True)
    client, socket_id = await ws(server.port)
    signed = registry_for(config).authorize_user(socket_id, ANA)
    assert signed is not None
    await sign_in(client, signed)
    await subscribe(client, "#server-to-user-7")
    assert await asyncio.to_thread(broadcaster.send_to_user, 7, "ping", {"x": 1}) == {}
    message = await next_message(client)
    assert (message["event"], message["channel"]) == ("ping", "#server-to-user-7")
    assert await asyncio.to_thread(broadcaster.terminate_user_connections, "7") == {}
    assert await client.recv_close() == 4009


async def test_async_broadcaster_reaches_subscribers(server: ServerProcess, ws: Connect) -> None:
    client, socket_id = await ws(server.port)
    await subscribe(client, "news")
    async with AsyncBroadcaster(config_for(server), strict=True) as broadcaster:
        assert await broadcaster.trigger("news", "update", {"a": 1}) == {}
        assert (await next_message(client))["data"] == '{"a": 1}'
        await broadcaster.trigger_batch([{"channel": "news", "name": "b", "data": "2"}])
        assert (await next_message(client))["event"] == "b"
        assert await broadcaster.trigger("news", "mine", {}, socket_id) == {}
        await no_message(client)
        info = await broadcaster.channels_info(info=["subscription_count"])
        assert info == {"channels": {"news": {"subscription_count": 1}}}
        assert await broadcaster.channel_info("news") == {"occupied": True}


async def test_async_send_to_user_terminate_and_presence_users(
    server: ServerProcess, ws: Connect
) -> None:
    config = config_for(server)
    client, socket_id = await ws(server.port)
    channels = registry_for(config)
    signed = await channels.authorize_user_async(socket_id, ANA)
    assert signed is not None
    await sign_in(client, signed)
    await subscribe(client, "#server-to-user-7")
    auth = await channels.authorize_async("presence-room.a", socket_id, ANA)
    await subscribe(client, "presence-room.a", auth)
    async with AsyncBroadcaster(config, strict=True) as broadcaster:
        assert await broadcaster.users_info("presence-room.a") == {"users": [{"id": "7"}]}
        assert await broadcaster.send_to_user("7", "hi", "there") == {}
        assert (await next_message(client))["data"] == "there"
        assert await broadcaster.terminate_user_connections(7) == {}
    assert await client.recv_close() == 4009


async def test_encrypted_channel_end_to_end(server: ServerProcess, ws: Connect) -> None:
    config = config_for(server)
    channels = registry_for(config)
    channels.channel("vault.{n}", lambda user, n: True)
    client, socket_id = await ws(server.port)
    auth = channels.authorize("private-encrypted-vault.1", socket_id, ANA)
    assert auth is not None
    await subscribe(client, "private-encrypted-vault.1", auth)
    broadcaster = Broadcaster(config, strict=True)
    await asyncio.to_thread(broadcaster.trigger, "private-encrypted-vault.1", "s", {"pin": 1})
    message = await next_message(client)
    sealed = json.loads(message["data"])
    assert "pin" not in message["data"]
    box = nacl.secret.SecretBox(base64.b64decode(auth["shared_secret"]))
    plain = box.decrypt(base64.b64decode(sealed["ciphertext"]), base64.b64decode(sealed["nonce"]))
    assert json.loads(plain) == {"pin": 1}


async def test_non_numeric_app_id_and_server_path_from_a_laravel_env(
    tmp_path: Path, ws: Connect
) -> None:
    env = {"REVERB_APP_ID": "telemedicina-prod", "REVERB_SERVER_PATH": "/realtime"}
    server = start_server(tmp_path, env)
    try:
        config = BroadcastConfig.from_env(
            {
                **server.env,
                "REVERB_HOST": "127.0.0.1",
                "REVERB_PORT": str(server.port),
                "REVERB_SCHEME": "http",
            }
        )
        assert (config.app_id, config.path) == ("telemedicina-prod", "/realtime")
        client, _ = await ws(server.port, f"/realtime/app/{APP_KEY}?protocol=7")
        await subscribe(client, "news")
        broadcaster = Broadcaster(config, strict=True)
        assert await asyncio.to_thread(broadcaster.trigger, "news", "e", "x") == {}
        assert (await next_message(client))["data"] == "x"
        async with AsyncBroadcaster(config, strict=True) as aio:
            assert await aio.channel_info("news") == {"occupied": True}
            assert await aio.terminate_user_connections("9") == {}
        client.close()
        await client.writer.wait_closed()
    finally:
        server.stop()
