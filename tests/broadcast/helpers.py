"""Shared by the broadcast tests: configs for the test server and raw WebSocket steps."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from overtone.broadcast import BroadcastConfig, ChannelRegistry, WarningLimiter
from support.rawws import RawClient
from support.servers import APP_ID, APP_KEY, APP_SECRET, ServerProcess

Post = Callable[[str, Mapping[str, str], str | None, bool], tuple[int, Any]]
"""``post(path, params, user_name, as_json) -> (status, parsed JSON body)`` via a framework."""

USERS: dict[str, dict[str, Any]] = {
    "ana": {"id": 7, "name": "Ana", "orders": ["42"]},
    "bo": {"id": "b-8", "name": "Bo", "orders": []},
}
USER_HEADER = "X-Test-User"


def user_named(name: str | None) -> dict[str, Any] | None:
    """The test user a request names in :data:`USER_HEADER` (``None``: nobody signed in)."""
    return USERS.get(name or "")


MASTER_KEY = "uS+ZPHyKDRzMHr9QOXcYwhrNXvqNbdLZAMQD0gGEGBs="  # base64 of 32 bytes


def config_for(server: ServerProcess, **changes: Any) -> BroadcastConfig:
    """Credentials and address of the test server."""
    values: dict[str, Any] = {
        "app_id": APP_ID,
        "key": APP_KEY,
        "secret": APP_SECRET,
        "port": server.port,
        "encryption_master_key_base64": MASTER_KEY,
    }
    values.update(changes)
    return BroadcastConfig(**values)


def registry_for(config: BroadcastConfig) -> ChannelRegistry:
    """The rules the framework tests authorize with: user ids come from plain dicts."""
    channels = ChannelRegistry(
        config,
        user_data=lambda user: {"id": user["id"], "user_info": {"name": user["name"]}},
        limiter=WarningLimiter(),
    )
    channels.channel("orders.{order_id}", lambda user, order_id: order_id in user["orders"])
    channels.channel("room.{room}", lambda user, room: {"name": user["name"], "room": room})
    return channels


async def next_message(client: RawClient, timeout: float = 5) -> dict[str, Any]:
    """The next frame that is not a server ping."""
    while True:
        message = await client.recv_json(timeout)
        if message.get("event") != "pusher:ping":
            return message


async def subscribe(client: RawClient, channel: str, auth: dict[str, Any] | None = None) -> Any:
    """Subscribe with ``auth`` (as an auth endpoint returned it); the reply's parsed data."""
    data: dict[str, Any] = {"channel": channel}
    for field in ("auth", "channel_data"):
        if auth is not None and field in auth:
            data[field] = auth[field]
    client.send_json({"event": "pusher:subscribe", "data": data})
    reply = await next_message(client)
    assert reply["event"] == "pusher_internal:subscription_succeeded", reply
    assert reply["channel"] == channel
    return json.loads(reply["data"])


async def sign_in(client: RawClient, auth: dict[str, Any]) -> dict[str, Any]:
    """``pusher:signin`` with a user-auth answer; the ``signin_success`` message."""
    client.send_json({"event": "pusher:signin", "data": auth})
    reply = await next_message(client)
    assert reply["event"] == "pusher:signin_success", reply
    return reply


async def exercise_endpoints(post: Post, server: ServerProcess, ws: Any) -> None:
    """What every framework integration must do against the real server."""
    client, socket_id = await ws(server.port)
    auth, user_auth = "/broadcasting/auth", "/broadcasting/user-auth"

    # A private channel, form-encoded as pusher-js sends it.
    status, body = post(
        auth, {"socket_id": socket_id, "channel_name": "private-orders.42"}, "ana", False
    )
    assert status == 200, body
    await subscribe(client, "private-orders.42", body)
    private_auth = body

    # A presence channel, with a JSON body as custom authorizers send it.
    params = {"socket_id": socket_id, "channel_name": "presence-room.lobby"}
    status, body = post(auth, params, "ana", True)
    assert status == 200, body
    presence = await subscribe(client, "presence-room.lobby", body)
    assert presence["presence"]["hash"] == {"7": {"name": "Ana", "room": "lobby"}}

    # User sign-in.
    status, body = post(user_auth, {"socket_id": socket_id}, "ana", False)
    assert status == 200, body
    await sign_in(client, body)
    assert json.loads(body["user_data"]) == {"id": "7", "user_info": {"name": "Ana"}}

    # An answer is bound to its socket: another connection cannot use it.
    other, _ = await ws(server.port)
    other.send_json(
        {"event": "pusher:subscribe", "data": {"channel": "private-orders.42", **private_auth}}
    )
    refused = await next_message(other)
    assert refused["event"] == "pusher:subscription_error"

    # Refusals with the right status.
    for params, user, status_wanted in (
        ({"socket_id": socket_id, "channel_name": "private-orders.42"}, None, 403),
        ({"socket_id": socket_id, "channel_name": "private-orders.42"}, "bo", 403),
        ({"socket_id": socket_id, "channel_name": "private-nothing"}, "ana", 403),
        ({"socket_id": "bad", "channel_name": "private-orders.42"}, "ana", 400),
        ({"socket_id": socket_id, "channel_name": "public"}, "ana", 400),
        ({"socket_id": socket_id}, "ana", 400),
    ):
        status, body = post(auth, params, user, False)
        assert status == status_wanted, (params, user, status, body)
        assert "error" in body
    status, body = post(user_auth, {"socket_id": socket_id}, None, False)
    assert (status, body) == (403, {"error": "Forbidden"})


async def no_message(client: RawClient, seconds: float = 0.3) -> None:
    """Assert that nothing but pings arrives for ``seconds``."""
    try:
        message = await next_message(client, timeout=seconds)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected message: {message}")
