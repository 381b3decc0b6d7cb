"""``position()`` and ``history()`` (protocol.md §8): against the real server, and fail-soft."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from broadcast.conftest import Connect
from broadcast.helpers import config_for, next_message, registry_for, sign_in
from overtone.broadcast import (
    AsyncBroadcaster,
    BroadcastConfig,
    Broadcaster,
    InvalidBroadcast,
    NoHistory,
    NotConfigured,
    ServerRejected,
    ServerUnreachable,
    WarningLimiter,
)
from support.servers import ServerProcess, free_port, start_server

LOGGER = "overtone.broadcast"


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= 30]


async def test_position_and_history_follow_the_published_events(
    server: ServerProcess, ws: Connect
) -> None:
    broadcaster = Broadcaster(config_for(server), strict=True)
    start = broadcaster.position("orders.1")
    assert start is not None and set(start) == {"epoch", "offset"}
    assert isinstance(start["epoch"], str) and start["offset"] == 0
    for n in range(3):
        await asyncio.to_thread(broadcaster.trigger, "orders.1", "changed", {"n": n})
    assert broadcaster.position("orders.1") == {"epoch": start["epoch"], "offset": 3}

    page = broadcaster.history("orders.1", since=1, epoch=start["epoch"])
    assert page == {
        "position": {"epoch": start["epoch"], "offset": 3},
        "complete": True,
        "events": [
            {"offset": 2, "event": "changed", "data": '{"n": 1}'},
            {"offset": 3, "event": "changed", "data": '{"n": 2}'},
        ],
    }
    first = broadcaster.history("orders.1", limit=1)
    assert first is not None and [e["offset"] for e in first["events"]] == [1]
    other = broadcaster.history("orders.1", since=0, epoch="another-epoch")
    assert other is not None and other["complete"] is False  # reload from the database

    # A page rendered at `start` that subscribes with it recovers all three events.
    client, _ = await ws(server.port)
    recover = {"channel": "orders.1", "recover": start}
    client.send_json({"event": "pusher:subscribe", "data": recover})
    reply = await next_message(client)
    assert reply["event"] == "pusher_internal:subscription_succeeded"
    assert reply["recovered"] is True and reply["position"]["offset"] == 3
    assert [(await next_message(client))["offset"] for _ in range(3)] == [1, 2, 3]
    broadcaster.close()


async def test_async_position_history_and_the_user_channel(
    server: ServerProcess, ws: Connect
) -> None:
    config = config_for(server)
    client, socket_id = await ws(server.port)
    signed = registry_for(config).authorize_user(socket_id, {"id": 7, "name": "Ana"})
    assert signed is not None
    await sign_in(client, signed)
    async with AsyncBroadcaster(config, strict=True) as broadcaster:
        before = await broadcaster.position("#server-to-user-7")
        assert before is not None
        assert await broadcaster.send_to_user(7, "note", {"text": "hi"}) == {}
        after = await broadcaster.position("#server-to-user-7")
        assert after == {"epoch": before["epoch"], "offset": before["offset"] + 1}
        page = await broadcaster.history("#server-to-user-7", since=before["offset"])
        assert page is not None and page["complete"] is True
        [event] = page["events"]
        assert (event["event"], json.loads(event["data"])) == ("note", {"text": "hi"})
        quiet = await broadcaster.position("presence-room.x")
        assert quiet is not None and quiet["offset"] == 0


def test_bad_arguments_are_dropped_before_sending(
    server: ServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    broadcaster = Broadcaster(config_for(server), limiter=WarningLimiter())
    with caplog.at_level(logging.WARNING, LOGGER):
        assert broadcaster.position("bad channel") is None
        assert broadcaster.history("orders", since=-1) is None
        assert broadcaster.history("orders", limit=0) is None
        assert broadcaster.history("orders", since=True) is None
    assert len(warnings_of(caplog)) == 4
    strict = Broadcaster(config_for(server), strict=True)
    with pytest.raises(InvalidBroadcast, match="since must be at least 0"):
        strict.history("orders", since=-1)
    with pytest.raises(ServerRejected) as raised:
        strict.history("orders", limit=5000)  # over the server's maximum
    assert raised.value.status == 400


async def test_a_server_without_history_gives_none_and_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_server(tmp_path, {"OVERTONE_HISTORY_ENABLED": "false"})
    try:
        config = config_for(server)
        broadcaster = Broadcaster(config, limiter=WarningLimiter())
        with caplog.at_level(logging.WARNING, LOGGER):
            assert broadcaster.position("orders.1") is None
            assert broadcaster.position("orders.2") is None
            assert broadcaster.history("orders.1") is None
        no_position, history_off = warnings_of(caplog)
        assert no_position == (
            f"overtone at {config.server_url} gave no position for orders.1 (history is off, "
            "or the server is not overtone); pages start without one"
        )
        assert "with 400" in history_off and "History is off" in history_off
        with pytest.raises(NoHistory):
            Broadcaster(config, strict=True).position("orders.1")
        async with AsyncBroadcaster(config, strict=True) as aio:
            with pytest.raises(NoHistory):
                await aio.position("orders.1")
    finally:
        server.stop()


async def test_not_configured_and_server_down_fail_soft(
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = BroadcastConfig(app_id="1", key="k", secret="s", port=free_port())
    limiter = WarningLimiter()
    with caplog.at_level(logging.WARNING, LOGGER):
        off = Broadcaster(BroadcastConfig(), limiter=limiter)
        assert off.position("orders") is None and off.history("orders") is None
        refused = Broadcaster(down, limiter=limiter)
        assert refused.position("orders") is None and refused.history("orders") is None
        async with AsyncBroadcaster(down, limiter=limiter) as aio:
            assert await aio.position("orders") is None
            assert await aio.history("orders", since=3, epoch="e", limit=10) is None
    not_configured, unreachable = warnings_of(caplog)
    assert not_configured.startswith("realtime broadcasting is off: REVERB_APP_ID")
    assert unreachable.startswith(f"overtone at {down.server_url} is unreachable (")
    with pytest.raises(NotConfigured):
        Broadcaster(BroadcastConfig(), strict=True).position("orders")
    with pytest.raises(ServerUnreachable):
        Broadcaster(down, strict=True).history("orders")
    async with AsyncBroadcaster(down, strict=True) as aio:
        with pytest.raises(ServerUnreachable):
            await aio.position("orders")
