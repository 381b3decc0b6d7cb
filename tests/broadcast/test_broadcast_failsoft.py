"""Fail soft: not configured, server down or silent, rejected; one warning; strict raises."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator

import pytest

from broadcast.helpers import config_for
from overtone.broadcast import (
    AsyncBroadcaster,
    BroadcastConfig,
    Broadcaster,
    InvalidBroadcast,
    NotConfigured,
    ServerRejected,
    ServerUnreachable,
    WarningLimiter,
)
from support.servers import ServerProcess, free_port, scaled

LOGGER = "overtone.broadcast"


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= 30]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (in the backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield int(listener.getsockname()[1])


def down(port: int | None = None, **changes: object) -> BroadcastConfig:
    values: dict[str, object] = {
        "app_id": "1",
        "key": "k",
        "secret": "s",
        "port": free_port() if port is None else port,
    }
    values.update(changes)
    return BroadcastConfig(**values)  # type: ignore[arg-type]


def test_not_configured_logs_one_warning_and_returns_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broadcaster = Broadcaster.from_env({}, limiter=WarningLimiter())
    assert not broadcaster.enabled
    with caplog.at_level(logging.WARNING, LOGGER):
        assert broadcaster.trigger("orders", "created", {"id": 1}) is None
        assert broadcaster.send_to_user("7", "hello", {}) is None
        assert broadcaster.channels_info() is None
    assert warnings_of(caplog) == [
        "realtime broadcasting is off: REVERB_APP_ID, REVERB_APP_KEY and REVERB_APP_SECRET "
        "are not set"
    ]


def test_not_configured_in_strict_mode_raises() -> None:
    broadcaster = Broadcaster.from_env({"REVERB_APP_KEY": "k"}, strict=True)
    with pytest.raises(NotConfigured, match="REVERB_APP_ID and REVERB_APP_SECRET are not set"):
        broadcaster.trigger("orders", "created", {})


def test_strict_mode_can_come_from_the_environment() -> None:
    broadcaster = Broadcaster.from_env({"OVERTONE_BROADCAST_STRICT": "true"})
    with pytest.raises(NotConfigured):
        broadcaster.trigger("orders", "created", {})


def test_server_down_returns_promptly_with_exactly_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = down()
    broadcaster = Broadcaster(config, limiter=WarningLimiter())
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, LOGGER):
        results = [broadcaster.trigger("orders", "created", {"n": n}) for n in range(5)]
    assert time.monotonic() - started < scaled(5)
    assert results == [None] * 5
    [warning] = warnings_of(caplog)
    assert warning.startswith(f"overtone at {config.server_url} is unreachable (")
    assert "Connection refused" in warning and "auth_signature" not in warning


def test_server_down_in_strict_mode_raises_with_the_cause() -> None:
    broadcaster = Broadcaster(down(), strict=True)
    with pytest.raises(ServerUnreachable, match="is unreachable") as raised:
        broadcaster.trigger("orders", "created", {})
    assert raised.value.__cause__ is not None


def test_a_silent_server_costs_no_more_than_the_read_timeout(
    silent_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    broadcaster = Broadcaster(down(silent_port, read_timeout=0.3), limiter=WarningLimiter())
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, LOGGER):
        assert broadcaster.trigger("orders", "created", {}) is None
    assert 0.25 < time.monotonic() - started < scaled(5)
    [warning] = warnings_of(caplog)
    assert "timed out" in warning


async def test_async_server_down_and_silent_fail_soft_promptly(
    silent_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = WarningLimiter()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, LOGGER):
        async with AsyncBroadcaster(down(), limiter=limiter) as refused:
            assert await refused.trigger("orders", "created", {}) is None
            assert await refused.trigger("orders", "created", {}) is None
        async with AsyncBroadcaster(down(silent_port, read_timeout=0.3), limiter=limiter) as mute:
            assert await mute.channels_info() is None
    assert time.monotonic() - started < scaled(5)
    refused_warning, timeout_warning = warnings_of(caplog)
    assert "unreachable (ConnectionRefusedError" in refused_warning
    assert "unreachable (" in timeout_warning and str(silent_port) in timeout_warning


async def test_async_strict_and_not_configured() -> None:
    async with AsyncBroadcaster(down(), strict=True) as broadcaster:
        with pytest.raises(ServerUnreachable):
            await broadcaster.trigger("orders", "created", {})
    async with AsyncBroadcaster(BroadcastConfig(), limiter=WarningLimiter()) as off:
        assert not off.enabled
        assert await off.trigger("orders", "created", {}) is None


def test_the_same_warning_comes_back_after_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    now = [1000.0]
    limiter = WarningLimiter(clock=lambda: now[0])
    broadcaster = Broadcaster(BroadcastConfig(), limiter=limiter)
    with caplog.at_level(logging.WARNING, LOGGER):
        broadcaster.trigger("a", "b", 1)
        now[0] += 59
        broadcaster.trigger("a", "b", 1)
        now[0] += 2
        broadcaster.trigger("a", "b", 1)
    assert len(warnings_of(caplog)) == 2


def test_the_limiter_is_shared_by_default_across_instances(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = BroadcastConfig(app_id="1", key="k", problem=f"REVERB_PORT='x{free_port()}' bad")
    with caplog.at_level(logging.WARNING, LOGGER):
        for _ in range(3):
            Broadcaster(config).trigger("a", "b", 1)  # a broadcaster per request
    assert len(warnings_of(caplog)) == 1


def test_the_limiter_keeps_a_bounded_memory() -> None:
    now = [0.0]
    limiter = WarningLimiter(clock=lambda: now[0], max_keys=3)
    for n in range(3):
        assert limiter.allow(f"k{n}")
    now[0] += 61
    assert limiter.allow("k3")
    assert len(limiter._last) == 1


def test_a_rejecting_server_is_one_warning_and_strict_gets_the_status(
    server: ServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = config_for(server, secret="not-the-secret")
    with caplog.at_level(logging.WARNING, LOGGER):
        broadcaster = Broadcaster(wrong, limiter=WarningLimiter())
        assert broadcaster.trigger("orders", "created", {}) is None
        assert broadcaster.trigger("orders", "created", {}) is None
    [warning] = warnings_of(caplog)
    assert "answered POST /apps/123456/events with 401" in warning
    assert "Invalid signature" in warning
    with pytest.raises(ServerRejected) as raised:
        Broadcaster(wrong, strict=True).trigger("orders", "created", {})
    assert raised.value.status == 401


def test_an_unknown_app_id_is_a_rejection(server: ServerProcess) -> None:
    with pytest.raises(ServerRejected) as raised:
        Broadcaster(config_for(server, app_id="999"), strict=True).channels_info()
    assert raised.value.status == 404


def test_recovery_is_logged_once_after_failures(
    server: ServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    config = config_for(server)
    broadcaster = Broadcaster(config, limiter=WarningLimiter())
    with caplog.at_level(logging.INFO, LOGGER):
        # 20 kB passes the SDK's check but not the server's 10 kB event limit: 413.
        assert broadcaster.trigger("orders", "created", "x" * 20_000) is None
        assert broadcaster.trigger("orders", "created", {}) == {}
        assert broadcaster.trigger("orders", "created", {}) == {}
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(messages) == 2
    assert "with 413" in messages[0]
    assert messages[1] == f"overtone at {config.server_url} answers again; broadcasting resumed"


@pytest.mark.parametrize(
    "call",
    [
        lambda b: b.trigger("bad channel!", "e", {}),
        lambda b: b.trigger([], "e", {}),
        lambda b: b.trigger("ok", "e" * 201, {}),
        lambda b: b.trigger("ok", "e", "x" * 40_000),
        lambda b: b.trigger_batch([{"channel": "ok", "name": "e"}]),
        lambda b: b.send_to_user("a b", "e", {}),
        lambda b: b.trigger(["private-encrypted-a", "private-encrypted-b"], "e", {}),
    ],
)
def test_arguments_that_cannot_be_sent_fail_soft_too(
    call: object, caplog: pytest.LogCaptureFixture
) -> None:
    broadcaster = Broadcaster(down(), limiter=WarningLimiter())
    with caplog.at_level(logging.WARNING, LOGGER):
        assert call(broadcaster) is None  # type: ignore[operator]
    [warning] = warnings_of(caplog)
    assert warning.startswith("broadcast dropped: ")
    with pytest.raises(InvalidBroadcast):
        call(Broadcaster(down(), strict=True))  # type: ignore[operator]
