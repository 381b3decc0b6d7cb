"""ChannelRegistry: matching, callbacks, and answers the server's own checks accept."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import warnings
from typing import Any

import pusher
import pytest

from overtone.broadcast import (
    AuthRequestError,
    BroadcastConfig,
    ChannelRegistry,
    NotConfigured,
    WarningLimiter,
)
from overtone.broadcast.channels import compile_pattern, default_user_id, normalize
from overtone.broadcast.endpoints import handle, parse_params, socket_id_from_headers
from overtone.protocol.signatures import channel_auth_ok, user_auth_ok

KEY, SECRET = "app-key", "app-secret"
MASTER_KEY = "uS+ZPHyKDRzMHr9QOXcYwhrNXvqNbdLZAMQD0gGEGBs="
CONFIG = BroadcastConfig(
    app_id="1", key=KEY, secret=SECRET, encryption_master_key_base64=MASTER_KEY
)
SOCKET = "1234.5678"
SDK = pusher.Pusher(app_id="1", key=KEY, secret=SECRET, encryption_master_key_base64=MASTER_KEY)
USER = {"id": 7, "name": "Ana", "orders": ["42"]}


@pytest.fixture
def channels() -> ChannelRegistry:
    registry = ChannelRegistry(CONFIG, limiter=WarningLimiter())
    registry.channel("orders.{order_id}", lambda user, order_id: order_id in user["orders"])
    registry.channel("room.{room}", lambda user, room: {"name": user["name"], "room": room})
    return registry


def test_private_channel_auth_passes_the_servers_check_and_equals_the_sdks(
    channels: ChannelRegistry,
) -> None:
    answer = channels.authorize("private-orders.42", SOCKET, USER)
    assert answer is not None and set(answer) == {"auth"}
    assert channel_auth_ok(KEY, SECRET, SOCKET, "private-orders.42", answer["auth"], None)
    assert answer == SDK.authenticate("private-orders.42", SOCKET)
    assert not channel_auth_ok(KEY, SECRET, "1.2", "private-orders.42", answer["auth"], None)


def test_presence_channel_auth_carries_channel_data_the_server_verifies(
    channels: ChannelRegistry,
) -> None:
    answer = channels.authorize("presence-room.lobby", SOCKET, USER)
    assert answer is not None and set(answer) == {"auth", "channel_data"}
    assert json.loads(answer["channel_data"]) == {
        "user_id": "7",
        "user_info": {"name": "Ana", "room": "lobby"},
    }
    assert channel_auth_ok(
        KEY, SECRET, SOCKET, "presence-room.lobby", answer["auth"], answer["channel_data"]
    )
    member = json.loads(answer["channel_data"])
    assert answer == SDK.authenticate("presence-room.lobby", SOCKET, member)


def test_encrypted_channel_auth_has_the_shared_secret_pusher_js_decrypts_with(
    channels: ChannelRegistry,
) -> None:
    channels.channel("vault.{n}", lambda user, n: True)
    answer = channels.authorize("private-encrypted-vault.1", SOCKET, USER)
    assert answer is not None and set(answer) == {"auth", "shared_secret"}
    expected = hashlib.sha256(b"private-encrypted-vault.1" + base64.b64decode(MASTER_KEY))
    assert answer["shared_secret"] == base64.b64encode(expected.digest()).decode()
    assert channel_auth_ok(KEY, SECRET, SOCKET, "private-encrypted-vault.1", answer["auth"], None)
    json.dumps(answer)  # the SDK's bytes were made JSON-ready


def test_encrypted_channels_without_a_master_key_are_not_configured() -> None:
    registry = ChannelRegistry(BroadcastConfig(app_id="1", key=KEY, secret=SECRET))
    registry.channel("vault.{n}", lambda user, n: True)
    message = "private-encrypted- channels is off: OVERTONE_ENCRYPTION_MASTER_KEY_BASE64"
    with pytest.raises(NotConfigured, match=message):
        registry.authorize("private-encrypted-vault.1", SOCKET, USER)


@pytest.mark.parametrize(
    ("result", "member"),
    [
        (True, {"user_id": "7"}),
        ({"name": "Ana"}, {"user_id": "7", "user_info": {"name": "Ana"}}),
        ({"id": 9, "name": "Bo"}, {"user_id": "7", "user_info": {"id": 9, "name": "Bo"}}),
        ({"id": 9, "info": {"a": 1}}, {"user_id": "9", "user_info": {"a": 1}}),
        ({"user_id": "x", "user_info": {"b": 2}}, {"user_id": "x", "user_info": {"b": 2}}),
        ({"user_id": 5}, {"user_id": "5"}),
    ],
)
def test_presence_member_shapes(result: object, member: dict[str, Any]) -> None:
    registry = ChannelRegistry(CONFIG)
    registry.channel("room", lambda user: result)
    answer = registry.authorize("presence-room", SOCKET, USER)
    assert answer is not None
    assert json.loads(answer["channel_data"]) == member
    assert channel_auth_ok(
        KEY, SECRET, SOCKET, "presence-room", answer["auth"], answer["channel_data"]
    )


def test_presence_user_id_falls_back_to_the_results_id_then_fails_clearly() -> None:
    registry = ChannelRegistry(CONFIG, user_id=lambda user: None)
    registry.channel("room", lambda user: user)
    answer = registry.authorize("presence-room", SOCKET, {"id": 3, "name": "C"})
    assert answer is not None and json.loads(answer["channel_data"])["user_id"] == "3"
    with pytest.raises(ValueError, match="cannot tell the user's id"):
        registry.authorize("presence-room", SOCKET, {"name": "nobody"})
    registry.channel("other", lambda user: "yes")
    with pytest.raises(TypeError, match="True or a mapping"):
        registry.authorize("presence-other", SOCKET, USER)


@pytest.mark.parametrize("result", [False, None, {}, 0])
def test_falsy_results_deny(result: object) -> None:
    registry = ChannelRegistry(CONFIG)
    registry.channel("room", lambda user: result)
    assert registry.authorize("presence-room", SOCKET, USER) is None
    assert registry.authorize("private-room", SOCKET, USER) is None


def test_deny_without_a_user_or_a_matching_rule(channels: ChannelRegistry) -> None:
    assert channels.authorize("private-orders.42", SOCKET, None) is None
    assert channels.authorize("private-orders.43", SOCKET, USER) is None
    assert channels.authorize("private-unknown", SOCKET, USER) is None
    assert channels.authorize("private-orders.42.x", SOCKET, USER) is None


@pytest.mark.parametrize(
    ("socket_id", "channel", "words"),
    [
        ("abc", "private-orders.42", "socket_id"),
        ("1.2.3", "private-orders.42", "socket_id"),
        ("", "private-orders.42", "socket_id"),
        (SOCKET, "private-bad name", "channel_name"),
        (SOCKET, "private-" + "x" * 200, "longer than 164"),
        (SOCKET, "orders.42", "public"),
        (SOCKET, "cache-orders.42", "public"),
        (SOCKET, "#server-to-user-7", "user sign-in"),
    ],
)
def test_malformed_requests_are_400(
    channels: ChannelRegistry, socket_id: str, channel: str, words: str
) -> None:
    with pytest.raises(AuthRequestError, match=words) as raised:
        channels.authorize(channel, socket_id, USER)
    assert raised.value.status == 400


def test_patterns_match_laravel_style() -> None:
    assert normalize("private-encrypted-a") == "a"
    assert normalize("presence-a") == "a"
    assert normalize("private-cache-a") == "cache-a"
    assert normalize("presence-cache-a") == "cache-a"
    regex = compile_pattern("App.Models.User.{id}")
    found = regex.fullmatch("App.Models.User.12")
    assert found is not None and found.groupdict() == {"id": "12"}
    assert regex.fullmatch("AppxModels.User.12") is None  # dots are literal
    two = compile_pattern("chat.{team}.{room}").fullmatch("chat.red.lobby")
    assert two is not None and two.groupdict() == {"team": "red", "room": "lobby"}
    with pytest.raises(ValueError, match="parameter"):
        compile_pattern("orders.{order-id}")


def test_first_registered_rule_wins_and_decorator_form() -> None:
    registry = ChannelRegistry(CONFIG)
    seen: list[str] = []

    @registry.channel("orders.{id}")
    def first(user: object, id: str) -> bool:
        seen.append(f"first {id}")
        return True

    registry.channel("orders.{other}", lambda user, other: seen.append("second"))
    assert registry.authorize("private-orders.1", SOCKET, USER) is not None
    assert seen == ["first 1"]
    assert first(None, "x") is True  # the decorator returns the function


def test_default_user_id() -> None:
    class DjangoUser:
        pk = 5
        id = 6

    class FlaskLoginUser:
        def get_id(self) -> str:
            return "u-1"

    assert default_user_id({"id": 1}) == 1
    assert default_user_id(DjangoUser()) == 5
    assert default_user_id(FlaskLoginUser()) == "u-1"
    assert default_user_id(object()) is None


def test_user_sign_in_passes_the_servers_check() -> None:
    registry = ChannelRegistry(
        CONFIG,
        user_data=lambda user: {
            "id": user["id"],
            "user_info": {"name": user["name"]},
            "watchlist": ["8", "9"],
        },
    )
    answer = registry.authorize_user(SOCKET, USER)
    assert answer is not None and set(answer) == {"auth", "user_data"}
    assert json.loads(answer["user_data"]) == {
        "id": "7",
        "user_info": {"name": "Ana"},
        "watchlist": ["8", "9"],
    }
    assert user_auth_ok(KEY, SECRET, SOCKET, answer["user_data"], answer["auth"])
    assert answer == SDK.authenticate_user(SOCKET, json.loads(answer["user_data"]))


def test_user_sign_in_defaults_and_refusals() -> None:
    registry = ChannelRegistry(CONFIG)
    answer = registry.authorize_user(SOCKET, USER)
    assert answer is not None and json.loads(answer["user_data"]) == {"id": "7"}
    assert registry.authorize_user(SOCKET, None) is None
    with pytest.raises(AuthRequestError):
        registry.authorize_user("nope", USER)
    with pytest.raises(ValueError, match="needs an 'id'"):
        registry.authorize_user(SOCKET, {"name": "no id"})
    assert ChannelRegistry(CONFIG, user_data=lambda user: None).authorize_user(SOCKET, USER) is None


async def test_async_callbacks_and_user_data() -> None:
    async def allowed(user: dict[str, Any], room: str) -> dict[str, str]:
        return {"room": room}

    async def user_data(user: dict[str, Any]) -> dict[str, Any]:
        return {"id": user["id"]}

    registry = ChannelRegistry(CONFIG, user_data=user_data)
    registry.channel("room.{room}", allowed)
    answer = await registry.authorize_async("presence-room.a", SOCKET, USER)
    assert answer is not None
    assert json.loads(answer["channel_data"]) == {"user_id": "7", "user_info": {"room": "a"}}
    signed_in = await registry.authorize_user_async(SOCKET, USER)
    assert signed_in is not None and json.loads(signed_in["user_data"]) == {"id": "7"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the un-awaited coroutine must be closed, not leaked
        with pytest.raises(TypeError, match="async"):
            registry.authorize("presence-room.a", SOCKET, USER)
        with pytest.raises(TypeError, match="async"):
            registry.authorize_user(SOCKET, USER)


def test_credentials_are_read_from_the_environment_on_first_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = ChannelRegistry()
    registry.channel("a", lambda user: True)
    monkeypatch.setenv("REVERB_APP_ID", "1")
    monkeypatch.setenv("REVERB_APP_KEY", KEY)
    monkeypatch.setenv("REVERB_APP_SECRET", SECRET)
    answer = registry.authorize("private-a", SOCKET, USER)
    assert answer is not None and channel_auth_ok(
        KEY, SECRET, SOCKET, "private-a", answer["auth"], None
    )


# -- the framework-independent endpoint ------------------------------------------------------


def test_endpoint_statuses(channels: ChannelRegistry, caplog: pytest.LogCaptureFixture) -> None:
    form = "application/x-www-form-urlencoded"
    ok = handle(
        channels, "channel", form, b"socket_id=1234.5678&channel_name=private-orders.42", USER
    )
    assert ok.status == 200 and channel_auth_ok(
        KEY, SECRET, SOCKET, "private-orders.42", ok.body["auth"], None
    )
    body = json.dumps({"socket_id": SOCKET, "channel_name": "private-orders.42"}).encode()
    assert handle(channels, "channel", "application/json", body, USER).body == ok.body
    assert handle(channels, "channel", form, b"socket_id=1234.5678", USER).status == 400
    assert (
        handle(channels, "channel", form, b"socket_id=x&channel_name=private-a", USER).status == 400
    )
    no_user = handle(
        channels, "channel", form, b"socket_id=1.2&channel_name=private-orders.42", None
    )
    assert (no_user.status, no_user.body) == (403, {"error": "Forbidden"})
    assert handle(channels, "channel", "application/json", b"[1]", USER).status == 400
    assert handle(channels, "channel", "application/json", b"{", USER).status == 400
    assert handle(channels, "channel", form, b"\xff", USER).status == 400
    assert handle(channels, "channel", form, b"x" * 70_000, USER).status == 413
    signed_in = handle(channels, "user", form, b"socket_id=1.2", USER)
    assert signed_in.status == 200 and user_auth_ok(
        KEY, SECRET, "1.2", signed_in.body["user_data"], signed_in.body["auth"]
    )

    off = ChannelRegistry(BroadcastConfig(), limiter=WarningLimiter())
    with caplog.at_level(logging.WARNING, "overtone.broadcast"):
        for _ in range(3):
            answer = handle(off, "channel", form, b"socket_id=1.2&channel_name=private-a", USER)
            assert (answer.status, answer.body) == (503, {"error": "realtime is not configured"})
    assert [r.getMessage() for r in caplog.records] == [
        "realtime broadcasting is off: REVERB_APP_ID, REVERB_APP_KEY and REVERB_APP_SECRET "
        "are not set"
    ]


def test_parse_params() -> None:
    assert parse_params(None, b"a=1&b=x%20y") == {"a": "1", "b": "x y"}
    assert parse_params("application/json; charset=utf-8", b'{"a": "1", "n": 2, "o": {}}') == {
        "a": "1",
        "n": "2",
    }
    assert parse_params("application/json", b"") == {}


def test_socket_id_from_echos_header() -> None:
    assert socket_id_from_headers({"X-Socket-ID": "12.34"}) == "12.34"
    assert socket_id_from_headers({"x-socket-id": "12.34"}) == "12.34"
    assert socket_id_from_headers({"X-Socket-ID": "undefined"}) is None
    assert socket_id_from_headers({}) is None
