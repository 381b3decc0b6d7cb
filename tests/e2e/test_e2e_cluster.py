"""Cluster scenarios: pusher-js and laravel-echo clients spread over three ``overtone start``
nodes joined through one real ``redis-server`` see a single server."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from e2e.e2e_helpers import Json, Scenario, events, run_scenario
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
        clients: list[RawClient] = []
        try:
            for node in nodes:
                clients.append(await RawClient.connect(node.port))
                await clients[-1].established()
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


@contextmanager
def joined_nodes(tmp_path: Path, env: dict[str, str], count: int) -> Iterator[list[ServerProcess]]:
    """``count`` ``overtone start`` nodes with ``env`` (a cluster on one Redis), joined;
    stopped (by PID) afterwards."""
    started: list[ServerProcess] = []
    try:
        for _ in range(count):
            started.append(start_server(tmp_path, env))
        wait_for_cluster(started)
        yield started
    finally:
        for node in started:
            node.stop()


@pytest.fixture
def nodes(tmp_path: Path, redis_server: RedisServer) -> Iterator[list[ServerProcess]]:
    """Three ``overtone start`` nodes on one Redis, joined; stopped (by PID) afterwards."""
    with joined_nodes(tmp_path, cluster_env(redis_server), 3) as started:
        yield started


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


ADA = {"id": 1, "name": "Ada"}
BOB = {"id": 2, "name": "Bob"}
CY = {"id": 3, "name": "Cy"}


def by_name(members: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(members, key=lambda member: str(member["name"]))


def member_frames(log: Json) -> list[tuple[str, str]]:
    """``(added|removed, user_id)`` for every member frame a client received."""
    return [
        (str(frame["event"]).rsplit("_", 1)[-1], str(frame["data"]["user_id"]))
        for frame in log["frames"]
    ]


def user_ids(view: Json) -> list[str]:
    return sorted(str(user["id"]) for user in view["users"]["users"])


def test_presence_through_laravel_echo_across_nodes(nodes: list[ServerProcess]) -> None:
    result = run(nodes, "cluster_presence")

    joined = result["joined"]
    assert {name: log["node"] for name, log in joined.items()} == {
        "ada": 0,
        "bob": 1,
        "cy": 2,
        "bob2": 2,
    }
    # here() lists every member of the cluster at join time, the joiner included, each once.
    assert joined["ada"]["here"] == [ADA]
    assert by_name(joined["bob"]["here"]) == [ADA, BOB]
    assert by_name(joined["cy"]["here"]) == [ADA, BOB, CY]
    assert by_name(joined["bob2"]["here"]) == [ADA, BOB, CY]
    # joining() fires once per user for later joiners, whichever node they are on; Bob's
    # second connection (node 2, his first is on node 1) is no join, for anybody.
    assert joined["ada"]["joining"] == [BOB, CY]
    assert joined["bob"]["joining"] == [CY]
    assert joined["cy"]["joining"] == []
    assert joined["bob2"]["joining"] == []
    # ... and the server sent no duplicate member_added that pusher-js could have hidden.
    assert member_frames(joined["ada"]) == [("added", "2"), ("added", "3")]
    assert member_frames(joined["bob"]) == [("added", "3")]
    assert member_frames(joined["cy"]) == member_frames(joined["bob2"]) == []
    assert all(log["errors"] == [] for log in joined.values())

    # The HTTP API of every node (Node SDK) gives the cluster-wide view.
    for view in result["joined_views"]:
        assert user_ids(view) == ["1", "2", "3"], view
        assert view["channels"] == {"channels": {"presence-x": {"user_count": 3}}}, view
        assert view["channel"] == {"occupied": True, "user_count": 3, "subscription_count": 4}
        assert view["connections"] == 4

    # Bob's connection on node 2 leaving is no leave: Bob is still connected on node 1.
    after = result["after_bob2_left"]
    assert [after[name]["leaving"] for name in ("ada", "bob", "cy")] == [[], [], []]
    assert [member_frames(after[name]) for name in ("bob", "cy")] == [[("added", "3")], []]
    assert after["ada"]["markers"] == [1, 2]
    for view in result["after_bob2_views"]:
        assert user_ids(view) == ["1", "2", "3"], view
        assert view["channel"] == {"occupied": True, "user_count": 3, "subscription_count": 3}

    # Bob's last connection leaving is a leave for everybody, once; then Cy's.
    final = result["final"]
    assert final["ada"]["leaving"] == [BOB, CY]
    assert final["cy"]["leaving"] == [BOB]
    assert member_frames(final["ada"]) == [
        ("added", "2"),
        ("added", "3"),
        ("removed", "2"),
        ("removed", "3"),
    ]
    assert member_frames(final["cy"]) == [("removed", "2")]
    assert final["ada"]["markers"] == [1, 2, 3]

    # Only Ada (node 0) is left; every node counts her. (The channel list of nodes 1 and 2,
    # where nobody is subscribed any more, is test_channel_lists_are_cluster_wide's subject.)
    for view in result["alone"]:
        assert view["users"] == {"users": [{"id": "1"}]}, view
        assert view["channel"] == {"occupied": True, "user_count": 1, "subscription_count": 1}
        assert view["connections"] == 1
    assert result["alone"][0]["channels"] == {"channels": {"presence-x": {"user_count": 1}}}
    for view in result["vacated"]:
        assert view["channels"] == {"channels": {}}, view
        assert view["channel"]["occupied"] is False, view
        assert view["connections"] == 0
    assert_clean_logs(nodes)


def test_channel_lists_are_cluster_wide(nodes: list[ServerProcess]) -> None:
    result = run(nodes, "cluster_channels")

    # The subscriber lives on node 0 only; every node answers like one server.
    for node, view in enumerate(result["views"]):
        assert view["single"] == {"occupied": True, "subscription_count": 1, "user_count": 1}
        assert view["all"] == {
            "channels": {
                "presence-solo": {"subscription_count": 1},
                "solo": {"subscription_count": 1},
            }
        }, (node, view)
        assert view["presence"] == {"channels": {"presence-solo": {"user_count": 1}}}, (node, view)


def test_cache_channel_serves_late_subscribers_on_other_nodes(
    nodes: list[ServerProcess],
) -> None:
    result = run(nodes, "cluster_cache")

    # The last event triggered through node 0 while nobody was subscribed is cached everywhere.
    for view in result["cached"]:
        assert view["occupied"] is False, view
        assert view["cache"]["event"] == "price", view
        assert view["cache"]["data"] == '{"v":2}', view
    assert result["cached_after_live"]["occupied"] is True
    a, b, c = result["subscribers"]
    assert [a["node"], b["node"], c["node"]] == [0, 1, 2]
    # Late subscribers on nodes 2 and 1 got exactly the cached event, then the live ones; the
    # subscriber on node 0 got the live event of node 2 as the cached one.
    assert c["prices"] == [{"v": 2}, {"v": 3}, {"v": 4}]
    assert b["prices"] == [{"v": 2}, {"v": 3}, {"v": 4}]
    assert a["prices"] == [{"v": 3}, {"v": 4}]
    assert a["misses"] == b["misses"] == c["misses"] == 0
    # Nothing cached anywhere in the cluster: a cache miss, still subscribed.
    assert result["empty_subscribed"] is True
    assert_clean_logs(nodes)


def test_users_watchlist_send_and_terminate_across_nodes(nodes: list[ServerProcess]) -> None:
    result = run(nodes, "cluster_user")

    assert result["send_status"] == [200, 200]
    assert result["terminate_status"] == 200
    w, u1 = result["w"], result["u1"]
    assert (w["node"], u1["node"], result["u2a"]["node"], result["u2b"]["node"]) == (0, 1, 2, 1)
    # sendToUser through node 0 reached u1 on node 1 (once); through node 2, W on node 0.
    assert u1["received"] == [{"msg": "hello u1"}]
    assert w["received"] == [{"msg": "hello w"}]
    assert result["u2a"]["received"] == result["u2b"]["received"] == []
    # Watchlist across nodes: one `online` for u2 although it signed in on two nodes, and no
    # `offline` while its connection on node 1 was still there.
    assert result["before_offline"]["watchlist"] == [
        {"name": "online", "user_ids": ["u1"]},
        {"name": "online", "user_ids": ["u2"]},
    ]
    assert w["watchlist"] == [
        {"name": "online", "user_ids": ["u1"]},
        {"name": "online", "user_ids": ["u2"]},
        {"name": "offline", "user_ids": ["u2"]},
        {"name": "offline", "user_ids": ["u1"]},
    ]
    assert w["markers"] == [1, 2, 3]
    # terminateUserConnections through node 2 closed u1's connection on node 1 with 4009
    # (pusher-js: don't reconnect); W was untouched.
    assert u1["states"] == ["connected", "disconnected"], u1
    assert u1["errors"] and set(u1["errors"]) == {4009}, u1
    assert result["w_state"] == "connected"
    assert w["errors"] == []
    assert_clean_logs(nodes)


def test_sigkilled_node_leaves_presence_and_counts(nodes: list[ServerProcess]) -> None:
    survivors = [nodes[0], nodes[2]]
    with Scenario(nodes[0], "cluster_sigkill", peers=nodes[1:]) as scenario:
        scenario.wait_stage("kill")
        killed_at = time.time()
        nodes[1].process.send_signal(signal.SIGKILL)
        nodes[1].process.wait(scaled(5))
        scenario.resume("kill")
        result = scenario.finish(timeout=30)

    for view in result["before"]:
        assert view["users"] == ["1", "3", "9"], view
        assert view["channel"] == {"occupied": True, "user_count": 3, "subscription_count": 3}
        assert view["connections"] == 5
    assert sorted(member["name"] for member in result["ghost_here"]) == ["Ada", "Ghost"]

    # Ada (node 0) and Cy (node 2) saw Ghost leave once, within the node timeout (counted
    # from node 1's last heartbeat, about one interval before the kill) plus slack. The dead
    # node sent no `bye`, so it cannot be much sooner (lenient: node 1's loop may have lagged).
    ghost = {"name": "Ghost"}
    for log in (result["ada"], result["cy"]):
        assert [leave["member"] for leave in log["leaving"]] == [ghost], log
        delay = log["leaving"][0]["at"] / 1000 - killed_at
        assert NODE_TIMEOUT / 3 < delay < scaled(NODE_TIMEOUT + 1.5), (log["label"], delay)
        removed = [f for f in log["frames"] if f["event"].endswith("member_removed")]
        assert removed == [
            {
                "channel": "presence-x",
                "event": "pusher_internal:member_removed",
                "data": {"user_id": "9"},
            }
        ], log
        assert sorted(log["markers"]) == [1, 2]  # one through each survivor: no mutual order
    # The watcher on node 2 saw `g` (signed in on node 1 only) go offline.
    assert result["g_node"] == 1
    assert [(e["name"], e["user_ids"]) for e in result["w"]["watchlist"]] == [
        ("online", ["g"]),
        ("offline", ["g"]),
    ]
    assert result["w_state"] == "connected"

    # The API of nodes 0 and 2 no longer counts anything that lived on node 1.
    for view in result["after"]:
        assert view["users"] == ["1", "3"], view
        assert view["channel"] == {"occupied": True, "user_count": 2, "subscription_count": 2}
        assert view["connections"] == 3
    assert all(node.process.poll() is None for node in survivors)
    assert_clean_logs(survivors)


def test_late_node_learns_members_users_and_cache(
    nodes: list[ServerProcess], redis_server: RedisServer, tmp_path: Path
) -> None:
    late: ServerProcess | None = None
    try:
        with Scenario(nodes[0], "cluster_late_node", peers=nodes[1:]) as scenario:
            scenario.wait_stage("start-node")
            late = start_server(tmp_path, cluster_env(redis_server))
            scenario.resume("start-node", {"port": late.port})
            result = scenario.finish(timeout=30)
    finally:
        if late is not None:
            late.stop()

    assert late is not None
    # Node 3 got the members, Ada's and Bob's connections and u1's, and the cached event.
    assert sorted(user["id"] for user in result["users"]["users"]) == ["1", "2"]
    assert result["connections"] == 3
    assert result["cached"]["cache"]["data"] == '{"v":1}'
    assert result["prices"] == [{"v": 1}]
    # Cy, on node 3, sees everybody; Ada and Bob see Cy join once, and nothing for the node.
    cy = result["cy"]
    assert sorted(member["name"] for member in cy["here"]) == ["Ada", "Bob", "Cy"]
    assert cy["joining"] == [] and cy["frames"] == []
    assert result["ada"]["joining"] == [{"name": "Bob"}, {"name": "Cy"}]
    assert result["bob"]["joining"] == [{"name": "Cy"}]
    assert member_frames(result["ada"]) == [("added", "2"), ("added", "3")]
    assert member_frames(result["bob"]) == [("added", "3")]
    assert all(result[name]["leaving"] == [] for name in ("ada", "bob", "cy"))
    # The watcher signing in on node 3 learns that u1 (node 1) is online.
    assert result["w"]["watchlist"] == [{"name": "online", "user_ids": ["u1"]}]
    assert_clean_logs([*nodes, late])
