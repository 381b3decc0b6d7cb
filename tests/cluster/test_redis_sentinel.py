"""Two ``overtone start`` nodes on Redis watched by Sentinel: the primary is SIGKILLed while
events are published, and the nodes carry on.

Real processes: one primary, one replica, three sentinels (quorum 2, the primary counted
down after one second of silence) and two overtone nodes with a node timeout of 6 s.
During the failover each node keeps serving its own clients; once the sentinels promote the
replica, both nodes reconnect to it without a restart, the cluster view (connection counts,
presence) is whole again within the node timeout, and events published after the failover
reach subscribers on the other node.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.test_redis_nodes import connections, eventually, no_message, sdk, subscribed
from support.rawws import RawClient
from support.redis_ha import SentinelSet
from support.servers import ServerProcess, scaled, start_server

NODE_TIMEOUT = 6.0


@pytest.fixture
def sentinel_set(tmp_path: Path) -> Iterator[SentinelSet]:
    redis = SentinelSet(tmp_path / "redis")
    redis.start()
    yield redis
    redis.stop()


def sentinel_env(redis: SentinelSet) -> dict[str, str]:
    return {
        "REVERB_SCALING_ENABLED": "true",
        "OVERTONE_REDIS_SENTINELS": redis.addresses,
        "OVERTONE_REDIS_SENTINEL_MASTER": redis.master_name,
        "REDIS_PREFIX": "test_",
        "OVERTONE_HEARTBEAT_INTERVAL": "0.5",
        "OVERTONE_NODE_TIMEOUT": str(NODE_TIMEOUT),
        "OVERTONE_TICK_INTERVAL": "0.1",
    }


def ready(node: ServerProcess) -> bool:
    """``/ready`` answers 200 only while the node's broker is connected."""
    try:
        with urllib.request.urlopen(f"{node.http_url}/ready", timeout=2) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def presence_ids(node: ServerProcess) -> list[str]:
    return sorted(user["id"] for user in sdk(node).users_info("presence-room")["users"])


async def drain(client: RawClient) -> list[dict[str, object]]:
    """Every frame that arrives until the client has been quiet for a moment."""
    received: list[dict[str, object]] = []
    with contextlib.suppress(TimeoutError):
        while True:
            received.append(await client.recv_json(timeout=0.3))
    return received


async def test_primary_killed_under_load_nodes_follow_the_new_primary(
    tmp_path: Path, sentinel_set: SentinelSet
) -> None:
    env = sentinel_env(sentinel_set)
    nodes = [start_server(tmp_path, env) for _ in range(2)]
    clients: list[RawClient] = []
    try:
        alice = await subscribed(nodes[0], "presence-room", "alice")
        bob = await subscribed(nodes[1], "presence-room", "bob")
        news_a = await subscribed(nodes[0], "news")
        news_b = await subscribed(nodes[1], "news")
        clients = [alice, bob, news_a, news_b]
        added = await alice.recv_json()
        assert added["event"] == "pusher_internal:member_added"
        await eventually(lambda: all(connections(node) == 4 for node in nodes))
        old_primary = sentinel_set.primary_port()
        assert old_primary is not None

        published = 0
        stop_publishing = asyncio.Event()

        async def publish_load() -> None:  # HTTP-triggered events on node 0 all along
            nonlocal published
            while not stop_publishing.is_set():
                await asyncio.to_thread(sdk(nodes[0]).trigger, "news", "load", str(published))
                published += 1
                await asyncio.sleep(0.02)

        load = asyncio.create_task(publish_load())
        await asyncio.sleep(0.5)
        killed_at = time.monotonic()
        sentinel_set.server_on(old_primary).kill()

        # During the failover each node keeps serving its own clients (without offsets:
        # no primary numbers them).
        await eventually(lambda: not ready(nodes[0]) and not ready(nodes[1]), timeout=5)
        sdk(nodes[0]).trigger("news", "during", "failover")
        while (during := await news_a.recv_json())["event"] != "during":
            pass
        assert "offset" not in during

        # Both nodes reach the promoted replica without a restart.
        await eventually(lambda: ready(nodes[0]) and ready(nodes[1]), timeout=20)
        reconnected_at = time.monotonic()
        new_primary = sentinel_set.primary_port()
        assert new_primary is not None and new_primary != old_primary
        for node in nodes:
            assert node.process.poll() is None
            assert f"primary 127.0.0.1:{new_primary}" in node.log()

        # The cluster view is whole again within the node timeout.
        def whole() -> bool:
            return all(
                connections(node) == 4 and presence_ids(node) == ["alice", "bob"] for node in nodes
            )

        await eventually(whole, timeout=NODE_TIMEOUT)
        whole_at = time.monotonic()
        stop_publishing.set()
        await load

        # Events published now reach the other node's subscribers (at most once each).
        await drain(news_b)
        sdk(nodes[0]).trigger("news", "after", "failover")
        after = await news_b.recv_json(timeout=5)
        assert (after["event"], after["data"]) == ("after", "failover")
        assert await no_message(news_b)
        sdk(nodes[1]).trigger("presence-room", "hello", "from b")
        seen_by_alice = [frame["event"] for frame in await drain(alice)]
        assert seen_by_alice[-1] == "hello"
        assert "pusher_internal:member_removed" not in seen_by_alice  # bob never left
        print(
            f"\nSentinel failover: {published} events published, nodes on the new primary "
            f"{reconnected_at - killed_at:.2f} s after the kill, cluster view whole "
            f"{whole_at - killed_at:.2f} s after the kill"
        )
        assert whole_at - reconnected_at <= scaled(NODE_TIMEOUT)
    finally:
        for client in clients:
            client.close()
        for node in nodes:
            node.stop()


def test_a_node_starts_while_the_sentinels_name_no_primary(tmp_path: Path) -> None:
    """Sentinels that cannot name a reachable primary delay the cluster, never the start."""
    redis = SentinelSet(tmp_path / "redis")
    redis.start(settle=False)
    env = {**sentinel_env(redis), "OVERTONE_REDIS_SENTINEL_MASTER": "nobody"}
    node = start_server(tmp_path, env)
    try:
        assert not ready(node)
        assert "unreachable" in node.log()
        assert json.loads(urllib.request.urlopen(f"{node.http_url}/up").read()) == {"health": "OK"}
    finally:
        node.stop()
        redis.stop()
