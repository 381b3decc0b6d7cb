"""Overtone nodes on a real Redis Cluster of three primaries (``redis-cli --cluster create``).

Each node is given a different seed node and finds the primary owning the broker channel's
slot by itself; the channel and every history key share one hash tag, and the nodes talk
through sharded pub/sub (Redis 7). The broker contract suite also runs on this cluster
(tests/cluster/test_broker_contract.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.test_redis_history import offsets, subscribe
from cluster.test_redis_nodes import connections, eventually, no_message, sdk, subscribed
from support.redis_ha import RedisClusterSet
from support.servers import ServerProcess, start_server

CHANNEL = "{test_reverb}"
"""The broker channel: ``REDIS_PREFIX`` + ``REVERB_SCALING_CHANNEL`` in one hash tag."""
FAILOVER_NODE_TIMEOUT = 8.0


def cluster_env(cluster: RedisClusterSet, seed: int) -> dict[str, str]:
    node = cluster.nodes[seed]
    return {
        "REVERB_SCALING_ENABLED": "true",
        "OVERTONE_REDIS_CLUSTER_NODES": f"127.0.0.1:{node.port}",
        "REDIS_PREFIX": "test_",
        "OVERTONE_HEARTBEAT_INTERVAL": "0.3",
        "OVERTONE_NODE_TIMEOUT": "1.5",
        "OVERTONE_TICK_INTERVAL": "0.1",
    }


@pytest.fixture
def nodes(tmp_path: Path, redis_cluster: RedisClusterSet) -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    try:
        for seed in range(3):
            started.append(start_server(tmp_path, cluster_env(redis_cluster, seed)))
        yield started
    finally:
        for node in started:
            node.stop()


async def test_nodes_share_one_shard_through_sharded_pubsub(
    nodes: list[ServerProcess], redis_cluster: RedisClusterSet
) -> None:
    owner = redis_cluster.owner_of(CHANNEL)
    for node in nodes:
        assert f"primary 127.0.0.1:{owner.port}, sharded pub/sub" in node.log()
    reply = owner.command("PUBSUB", "SHARDNUMSUB", CHANNEL)
    assert reply.split(b"\r\n")[-2] == b":3", reply  # every node subscribes on the owner
    for other in redis_cluster.nodes:
        assert other.command("PUBSUB", "NUMSUB", CHANNEL).split(b"\r\n")[-2] == b":0"
    client, _ = await subscribe(nodes[0], "news")
    sdk(nodes[1]).trigger("news", "stored", "x")
    assert await offsets(client, 1) == [("stored", 1)]
    keys = owner.command("KEYS", "*").split(b"\r\n")
    stored = sorted(k.decode() for k in keys if k.startswith(b"{"))
    assert stored == [f"{CHANNEL}:h:123456:news", f"{CHANNEL}:l:123456:news"]
    client.close()


async def test_events_and_presence_cross_nodes(nodes: list[ServerProcess]) -> None:
    clients = [await subscribed(node, "news") for node in nodes]
    extra = await subscribed(nodes[2], "news")
    await eventually(
        lambda: (
            sdk(nodes[1]).channel_info("news", ["subscription_count"])["subscription_count"] == 4
        )
    )
    sdk(nodes[0]).trigger("news", "e", "hello", socket_id=extra.socket_id)  # type: ignore[attr-defined]
    for client in clients:
        assert await client.recv_json() == {
            "event": "e",
            "channel": "news",
            "data": "hello",
            "offset": 1,
        }
        assert await no_message(client)
    assert await no_message(extra)
    watcher = await subscribed(nodes[0], "presence-room", "w")
    await eventually(lambda: sdk(nodes[1]).users_info("presence-room")["users"])
    alice = await subscribed(nodes[1], "presence-room", "alice")
    presence = json.loads(alice.last_reply["data"])["presence"]  # type: ignore[attr-defined]
    assert sorted(presence["ids"]) == ["alice", "w"]
    added = await watcher.recv_json()
    assert (added["event"], added["data"]["user_id"]) == ("pusher_internal:member_added", "alice")
    await eventually(lambda: all(connections(node) == 6 for node in nodes))
    alice.close()
    removed = await watcher.recv_json()
    assert (removed["event"], removed["data"]) == (
        "pusher_internal:member_removed",
        {"user_id": "alice"},
    )
    for client in [*clients, extra, watcher]:
        client.close()


async def test_a_subscriber_recovers_missed_events_on_another_node(
    nodes: list[ServerProcess],
) -> None:
    first, answer = await subscribe(nodes[0], "news")
    epoch = answer["position"]["epoch"]
    second, _ = await subscribe(nodes[1], "news")
    await eventually(
        lambda: (
            sdk(nodes[2]).channel_info("news", ["subscription_count"])["subscription_count"] == 2
        )
    )
    for name in ("one", "two"):
        sdk(nodes[2]).trigger("news", name, name)
    assert await offsets(first, 2) == await offsets(second, 2) == [("one", 1), ("two", 2)]
    first.close()
    for name in ("three", "four"):
        sdk(nodes[1]).trigger("news", name, name)
    assert await offsets(second, 2) == [("three", 3), ("four", 4)]
    back, answer = await subscribe(nodes[2], "news", recover={"epoch": epoch, "offset": 2})
    assert answer["recovered"] is True
    assert answer["position"] == {"epoch": epoch, "offset": 4}
    assert await offsets(back, 2) == [("three", 3), ("four", 4)]
    second.close()
    back.close()


async def test_the_owning_primary_restarts_and_the_nodes_rejoin(
    nodes: list[ServerProcess], redis_cluster: RedisClusterSet
) -> None:
    owner = redis_cluster.owner_of(CHANNEL)
    a, _ = await subscribe(nodes[0], "news")
    b, _ = await subscribe(nodes[2], "news")
    owner.stop()
    await asyncio.sleep(0.3)
    owner.start()
    redis_cluster.wait_ok()
    for node in nodes:
        await eventually(lambda node=node: "reachable again" in node.log(), timeout=15)  # type: ignore[misc]
    await eventually(
        lambda: (
            sdk(nodes[1]).channel_info("news", ["subscription_count"])["subscription_count"] == 2
        ),
        timeout=10,
    )
    for client in (a, b):
        # The restarted primary lost the stream: each node tells its connected subscribers,
        # unasked, that the stream restarted (reload), instead of leaving them a silent gap.
        told = await client.recv_json(timeout=10)
        assert told["event"] == "pusher_internal:subscription_succeeded"
        assert told["recovered"] is False and told["position"]["offset"] == 0
    sdk(nodes[1]).trigger("news", "after", "restart")
    for client in (a, b):
        message = await client.recv_json(timeout=10)
        assert message["event"] == "after"
        assert message["offset"] == 1  # a new epoch
    a.close()
    b.close()


async def test_the_owning_primary_is_killed_and_its_replica_takes_over(tmp_path: Path) -> None:
    """A cluster failover (as on ElastiCache with cluster mode on): the nodes follow the slot
    to the promoted replica without a restart, and the cluster view stays whole."""
    cluster = RedisClusterSet(tmp_path / "failover")
    cluster.start()
    started: list[ServerProcess] = []
    try:
        owner = cluster.owner_of(CHANNEL)
        cluster.add_replica(owner)
        env = {
            **cluster_env(cluster, 0),
            "OVERTONE_REDIS_CLUSTER_NODES": cluster.addresses,
            "OVERTONE_HEARTBEAT_INTERVAL": "0.5",
            "OVERTONE_NODE_TIMEOUT": str(FAILOVER_NODE_TIMEOUT),
        }
        started += [start_server(tmp_path, env) for _ in range(2)]
        watcher = await subscribed(started[0], "presence-room", "w")
        member = await subscribed(started[1], "presence-room", "m")
        news = await subscribed(started[1], "news")
        assert (await watcher.recv_json())["event"] == "pusher_internal:member_added"
        await eventually(lambda: all(connections(node) == 3 for node in started))
        killed_at = time.monotonic()
        owner.kill()
        await eventually(lambda: cluster.claimed_by(CHANNEL) not in (None, owner), timeout=20)
        new_owner = cluster.owner_of(CHANNEL)
        for node in started:
            await eventually(
                lambda node=node: f"primary 127.0.0.1:{new_owner.port}" in node.log(),  # type: ignore[misc]
                timeout=10,
            )
        reconnected_at = time.monotonic()
        await eventually(
            lambda: all(
                connections(node) == 3
                and sorted(u["id"] for u in sdk(node).users_info("presence-room")["users"])
                == ["m", "w"]
                for node in started
            ),
            timeout=FAILOVER_NODE_TIMEOUT,
        )
        whole_at = time.monotonic()
        sdk(started[0]).trigger("news", "after", "failover")
        while (message := await news.recv_json(timeout=10))["event"] != "after":
            pass
        assert message["offset"] == 1  # a new epoch on the promoted replica
        print(
            f"\nRedis Cluster failover: nodes on the promoted replica "
            f"{reconnected_at - killed_at:.2f} s after the kill, cluster view whole "
            f"{whole_at - killed_at:.2f} s after the kill"
        )
        for client in (watcher, member, news):
            client.close()
    finally:
        for node in started:
            node.stop()
        cluster.stop()
