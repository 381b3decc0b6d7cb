"""Three ``overtone start`` processes on one real Redis behave as one server."""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pusher
import pytest

from support.fakes import auth_for_secret
from support.rawws import RawClient
from support.redis_server import RedisServer
from support.servers import APP_ID, APP_KEY, APP_SECRET, ServerProcess, scaled, start_server
from support.signing import signed_target


def cluster_env(redis: RedisServer) -> dict[str, str]:
    return {
        "REVERB_SCALING_ENABLED": "true",
        "REDIS_URL": redis.url,
        "REDIS_PREFIX": "test_",
        "OVERTONE_HEARTBEAT_INTERVAL": "0.3",
        "OVERTONE_NODE_TIMEOUT": "1.5",
        "OVERTONE_TICK_INTERVAL": "0.1",
    }


@pytest.fixture
def nodes(tmp_path: Path, redis_server: RedisServer) -> Iterator[list[ServerProcess]]:
    started = [start_server(tmp_path, cluster_env(redis_server)) for _ in range(3)]
    yield started
    for node in started:
        node.stop()


def sdk(node: ServerProcess) -> pusher.Pusher:
    return pusher.Pusher(
        app_id=APP_ID, key=APP_KEY, secret=APP_SECRET, host=node.host, port=node.port, ssl=False
    )


async def eventually(check: Callable[[], Any], timeout: float = 5) -> Any:
    deadline = asyncio.get_running_loop().time() + scaled(timeout)
    while True:
        result = await asyncio.to_thread(check)
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met in time (last: {result!r})")
        await asyncio.sleep(0.05)


async def subscribed(node: ServerProcess, channel: str, user: str | None = None) -> RawClient:
    client = await RawClient.connect(node.port)
    socket_id = await client.established()
    data: dict[str, Any] = {"channel": channel}
    if channel.startswith(("private-", "presence-")):
        channel_data = json.dumps({"user_id": user}) if user else None
        data["auth"] = auth_for_secret(APP_KEY, APP_SECRET, socket_id, channel, channel_data)
        if channel_data:
            data["channel_data"] = channel_data
    client.send_json({"event": "pusher:subscribe", "data": data})
    reply = await client.recv_json()
    assert reply["event"] == "pusher_internal:subscription_succeeded", reply
    client.socket_id = socket_id  # type: ignore[attr-defined]
    client.last_reply = reply  # type: ignore[attr-defined]
    return client


def connections(node: ServerProcess) -> int:
    target = signed_target("GET", f"/apps/{APP_ID}/connections")
    with urllib.request.urlopen(node.http_url + target, timeout=5) as answer:
        return int(json.loads(answer.read())["connections"])


async def no_message(client: RawClient, wait: float = 0.3) -> bool:
    try:
        await client.recv(timeout=wait)
    except TimeoutError:
        return True
    return False


async def test_events_reach_every_node_once_with_exclusion(nodes: list[ServerProcess]) -> None:
    clients = [await subscribed(node, "news") for node in nodes]
    extra = await subscribed(nodes[2], "news")
    await eventually(
        lambda: (
            sdk(nodes[1]).channel_info("news", ["subscription_count"])["subscription_count"] == 4
        )
    )
    sdk(nodes[0]).trigger("news", "e", "hello", socket_id=extra.socket_id)  # type: ignore[attr-defined]
    for client in clients:  # history is on by default: the same offset on every node
        assert await client.recv_json() == {
            "event": "e",
            "channel": "news",
            "data": "hello",
            "offset": 1,
        }
        assert await no_message(client)  # exactly once
    assert await no_message(extra)
    for client in [*clients, extra]:
        client.close()


async def test_presence_and_queries_span_nodes(nodes: list[ServerProcess]) -> None:
    watcher = await subscribed(nodes[0], "presence-room", "w")
    # Replication takes one Redis round trip: a subscription on another node in the same
    # millisecond would learn of "w" through member_added instead of the snapshot.
    await eventually(lambda: sdk(nodes[1]).users_info("presence-room")["users"])
    alice = await subscribed(nodes[1], "presence-room", "alice")
    presence = json.loads(alice.last_reply["data"])["presence"]  # type: ignore[attr-defined]
    assert sorted(presence["ids"]) == ["alice", "w"]
    added = await watcher.recv_json()
    assert added["event"] == "pusher_internal:member_added"
    assert added["data"]["user_id"] == "alice"
    alice2 = await subscribed(nodes[2], "presence-room", "alice")
    assert await no_message(watcher)  # alice was already there
    users = await eventually(lambda: sdk(nodes[2]).users_info("presence-room")["users"])
    assert sorted(u["id"] for u in users) == ["alice", "w"]
    info = sdk(nodes[0]).channels_info("presence-", ["user_count"])
    assert info == {"channels": {"presence-room": {"user_count": 2}}}
    alice.close()
    assert await no_message(watcher, 0.5)
    alice2.close()
    removed = await watcher.recv_json()
    assert removed == {
        "event": "pusher_internal:member_removed",
        "channel": "presence-room",
        "data": {"user_id": "alice"},
    }
    watcher.close()


async def test_sigkilled_node_vanishes_from_counts_and_presence(
    nodes: list[ServerProcess],
) -> None:
    watcher = await subscribed(nodes[0], "presence-room", "w")
    ghost = await subscribed(nodes[1], "presence-room", "ghost")
    await watcher.recv_json()  # member_added ghost
    await eventually(lambda: sdk(nodes[2]).users_info("presence-room")["users"].__len__() == 2)
    nodes[1].process.send_signal(signal.SIGKILL)
    nodes[1].process.wait()
    removed = await watcher.recv_json(timeout=10)
    assert removed["event"] == "pusher_internal:member_removed"
    assert removed["data"] == {"user_id": "ghost"}
    expected = {"occupied": True, "user_count": 1, "subscription_count": 1}
    await eventually(  # each node times the dead one out on its own clock
        lambda: (
            sdk(nodes[2]).channel_info("presence-room", ["user_count", "subscription_count"])
            == expected
        )
    )
    ghost.close()
    watcher.close()


async def test_redis_outage_keeps_local_service_and_recovers(
    nodes: list[ServerProcess], redis_server: RedisServer
) -> None:
    a = await subscribed(nodes[0], "news")
    b = await subscribed(nodes[1], "news")
    redis_server.stop()
    await asyncio.sleep(0.5)
    sdk(nodes[0]).trigger("news", "local", "x")
    assert (await a.recv_json())["event"] == "local"  # local fan-out keeps working
    redis_server.start()
    await eventually(lambda: "reachable again" in nodes[0].log(), timeout=15)
    await eventually(lambda: "reachable again" in nodes[1].log(), timeout=15)
    await eventually(
        lambda: (
            sdk(nodes[2]).channel_info("news", ["subscription_count"])["subscription_count"] == 2
        ),
        timeout=10,
    )
    while True:  # b may or may not have seen "local": at most once, never twice
        sdk(nodes[0]).trigger("news", "after", "y")
        message = await b.recv_json()
        if message["event"] == "after":
            break
    assert all(node.process.poll() is None for node in nodes)
    a.close()
    b.close()


async def test_terminate_connections_and_connection_count_cluster_wide(
    nodes: list[ServerProcess],
) -> None:
    victim = await subscribed(nodes[2], "presence-x", "victim")
    other = await subscribed(nodes[1], "news")
    await eventually(lambda: connections(nodes[0]) == 2)
    sdk(nodes[0]).terminate_user_connections("victim")
    error = await victim.recv_json()
    assert error["data"]["code"] == 4009
    assert await victim.recv_close() == 4009
    assert await no_message(other)
    victim.close()
    other.close()
