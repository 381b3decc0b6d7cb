"""Cluster scenarios: pusher-js and laravel-echo clients spread over three ``overtone start``
nodes joined through one real ``redis-server`` see a single server."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from e2e.e2e_helpers import Json, events, run_scenario
from support.rawws import RawClient
from support.redis_server import RedisServer
from support.servers import APP_ID, ServerProcess, scaled, start_server
from support.signing import signed_target

pytestmark = pytest.mark.e2e

HEARTBEAT_INTERVAL = 0.3
NODE_TIMEOUT = 1.5


def cluster_env(redis: RedisServer) -> dict[str, str]:
    return {
        "REVERB_SCALING_ENABLED": "true",
        "REDIS_URL": redis.url,
        "REDIS_PREFIX": "e2e_",
        "OVERTONE_HEARTBEAT_INTERVAL": str(HEARTBEAT_INTERVAL),
        "OVERTONE_NODE_TIMEOUT": str(NODE_TIMEOUT),
        "OVERTONE_TICK_INTERVAL": "0.1",
    }


def connections(node: ServerProcess) -> int:
    """``GET /connections`` on one node (the cluster-wide count)."""
    target = signed_target("GET", f"/apps/{APP_ID}/connections")
    with urllib.request.urlopen(node.http_url + target, timeout=scaled(5)) as answer:
        return int(json.loads(answer.read())["connections"])


def wait_until(label: str, condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {scaled(timeout)} s waiting for {label}")
        time.sleep(0.02)


def wait_for_cluster(nodes: list[ServerProcess]) -> None:
    """Make sure every node hears every other: one connection per node is counted by all."""

    async def check() -> None:
        clients = [await RawClient.connect(node.port) for node in nodes]
        for client in clients:
            await client.established()
        try:
            await asyncio.to_thread(
                wait_until,
                "every node to count one connection per node",
                lambda: all(connections(node) == len(nodes) for node in nodes),
            )
        finally:
            for client in clients:
                client.close()

    asyncio.run(check())
    wait_until("the probe connections to be gone", lambda: all(connections(n) == 0 for n in nodes))


@pytest.fixture
def nodes(tmp_path: Path, redis_server: RedisServer) -> Iterator[list[ServerProcess]]:
    """Three ``overtone start`` nodes on one Redis, joined; stopped (by PID) afterwards."""
    started: list[ServerProcess] = []
    try:
        for _ in range(3):
            started.append(start_server(tmp_path, cluster_env(redis_server)))
        wait_for_cluster(started)
        yield started
    finally:
        for node in started:
            node.stop()


def run(nodes: list[ServerProcess], name: str, timeout: float = 30) -> Json:
    """Run a cluster scenario with node 0 as OVERTONE_PORT and all three in OVERTONE_PORTS."""
    return run_scenario(nodes[0], name, timeout=timeout, peers=nodes[1:])


def assert_clean_logs(nodes: list[ServerProcess]) -> None:
    for node in nodes:
        assert "Traceback" not in node.log(), node.log()


def test_events_reach_every_node_exactly_once(nodes: list[ServerProcess]) -> None:
    result = run(nodes, "cluster_public")

    # Every node's HTTP API counts the subscribers of all three nodes.
    assert result["counts"] == [{"occupied": True, "subscription_count": 4}] * 3
    received = {name: events(items) for name, items in result["events"].items()}
    # a (node 0), b (node 1) and c (node 2) got every event once, in order, within the window.
    for name in ("a", "b", "c"):
        assert received[name] == ["greeting", "not-for-c2", "marker"], (name, received)
    # The socket_id given to node 0 excluded the client on node 2, and nobody else.
    assert received["excluded"] == ["greeting", "marker"], received
    greeting = result["events"]["b"][0]
    assert greeting == {"channel": "news", "event": "greeting", "data": {"text": "hello", "n": 1}}
    assert set(result["states"].values()) == {"connected"}
    assert_clean_logs(nodes)


def test_client_events_cross_nodes_without_echo(nodes: list[ServerProcess]) -> None:
    result = run(nodes, "cluster_private")

    received = {name: events(items) for name, items in result["events"].items()}
    # Each client got the others' client events once, in order, and never its own.
    assert received == {
        "a": ["client-from-b", "client-from-c", "server-marker"],
        "b": ["client-typing", "client-from-c", "server-marker"],
        "c": ["client-typing", "client-from-b", "server-marker"],
    }
    by_event = {item["event"]: item for item in result["events"]["b"]}
    assert by_event["client-typing"] == {
        "channel": "private-chat",
        "event": "client-typing",
        "data": {"from": "a"},
    }
    # data is relayed as the client sent it, here a string.
    assert by_event["client-from-c"]["data"] == "plain text from c"
    assert result["events"]["c"][1]["data"] == {"from": "b"}
    assert set(result["states"].values()) == {"connected"}
    assert_clean_logs(nodes)
