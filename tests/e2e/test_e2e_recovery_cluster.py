"""Lossless reconnect (protocol.md §8, docs/history.md "In a cluster") across three nodes.

pusher-js 8, laravel-echo 2 (Node) and pusher-js in headless Chromium, each with the add-on
``static/recovery.js``, reach a cluster of three ``overtone start`` nodes on one real
``redis-server`` through a TCP proxy (``CutProxy`` of ``recovery_lib.mjs``) that cuts the
network, records every WebSocket frame and comes back through another node. The client must
get every event once, in order, whichever node it comes back to and whatever happened to the
node it left (cut off, SIGKILLed, drained and replaced); or, when Redis lost the streams, be
told to reload exactly once. A refused reconnect costs about 16 s (pusher-js's 15 s connect
timeout), so only the first cut test and the Chromium one refuse; the others hold reconnect
attempts until the network is back (``cut({hold: true})``).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.e2e_helpers import CHROMIUM, Json, Scenario, run_scenario
from e2e.test_e2e_cluster import cluster_env, joined_nodes
from support.redis_server import RedisServer
from support.servers import ServerProcess, scaled, start_server

pytestmark = pytest.mark.e2e


def node_env(redis: RedisServer) -> dict[str, str]:
    """A cluster node keeping up to 1000 events per channel (a drop misses about 220)."""
    return {**cluster_env(redis), "OVERTONE_HISTORY_MAX_EVENTS": "1000"}


@pytest.fixture
def nodes(tmp_path: Path, redis_server: RedisServer) -> Iterator[list[ServerProcess]]:
    """Three joined ``overtone start`` nodes on one Redis, keeping 1000 events per channel."""
    with joined_nodes(tmp_path, node_env(redis_server), 3) as started:
        yield started


def run(nodes: list[ServerProcess], name: str, timeout: float) -> Json:
    return run_scenario(nodes[0], name, timeout=timeout, peers=nodes[1:])


def assert_clean_logs(nodes: list[ServerProcess]) -> None:
    for node in nodes:
        assert "Traceback" not in node.log(), node.log()


def reconnected(result: Json) -> None:
    """The client lost its connection, went through connecting, and is connected again."""
    states = result["states"]
    first = states.index("connected")
    assert "connecting" in states[first + 1 :], states
    assert states[-1] == "connected", states
    assert result["first_socket"] != result["last_socket"]


def recover(subscribe: Json) -> Any:
    return subscribe.get("recover")


def test_cut_off_client_recovers_on_another_node(nodes: list[ServerProcess]) -> None:
    result = run(nodes, "recovery_cluster_drop", timeout=75)

    base = result["base_offset"]
    assert base == 0  # a fresh channel
    # The app got 1..241 once each, in order, and was never asked to reload.
    assert result["received"] == list(range(1, 242))
    assert result["received_during_cut"] == 20
    assert result["timeline_extra"] == []
    assert result["resyncs"] == []
    reconnected(result)
    assert result["proxy_refused"] >= 1
    assert result["cut_ms"] >= 5000
    # Nodes 1 and 2 published (node 0, the client's first node, none); the client was on
    # node 0, then on node 1.
    assert result["per_node"] == [0, 120, 121]
    ports = [node.port for node in nodes]
    assert result["proxy_targets"] == [ports[0], ports[1]]
    # The wire: the resubscribe on node 1 names the position of event 20 on node 0 and the
    # connection it was seen on; node 1 recovers, sends 21..220 from the history, then the
    # live ones, each once, consecutive.
    epoch = result["successes"][0]["position"]["epoch"]
    assert result["position_before_cut"] == {"epoch": epoch, "offset": 20}
    subscribes = result["subscribes"]
    assert [recover(s) for s in subscribes] == [
        None,
        {"epoch": epoch, "offset": 20, "socket_id": result["first_socket"]},
    ]
    last = result["successes"][-1]
    assert last["recovered"] is True
    assert last["position"]["epoch"] == epoch
    assert 220 <= last["position"]["offset"] <= 240
    assert result["last"]["port"] == ports[1]
    assert result["last"]["offsets"] == list(range(21, 242))
    assert result["last"]["skipped"] == []
    assert result["position_after"] == {"epoch": epoch, "offset": 241}
    assert_clean_logs(nodes)


def test_client_of_a_sigkilled_node_recovers_on_a_survivor(nodes: list[ServerProcess]) -> None:
    with Scenario(nodes[0], "recovery_cluster_sigkill", peers=nodes[1:]) as scenario:
        scenario.wait_stage("kill")
        nodes[0].process.send_signal(signal.SIGKILL)
        assert nodes[0].process.wait(scaled(5)) == -signal.SIGKILL
        scenario.resume("kill")
        result = scenario.finish(timeout=45)

    total = result["total"]
    # Echo got every event once, in order, and was never asked to reload.
    assert result["received"] == list(range(1, total + 1))
    assert result["timeline_extra"] == []
    assert result["resyncs"] == []
    reconnected(result)
    ports = [node.port for node in nodes]
    assert result["per_node"] == [0, 0, total]  # all through node 2
    assert result["proxy_targets"] == [ports[0], ports[1]]
    # Node 0 died mid-stream: events kept coming through node 2 while Echo reconnected.
    killed = result["killed"]
    assert killed["received"] >= 30
    epoch = result["successes"][0]["position"]["epoch"]
    lost = result["position_lost"]
    assert lost["epoch"] == epoch and lost["offset"] >= killed["received"]
    assert [recover(s) for s in result["subscribes"]] == [
        None,
        {"epoch": epoch, "offset": lost["offset"], "socket_id": result["first_socket"]},
    ]
    # Node 1 recovered what node 0 never sent (about a second of events), then the live ones.
    answer = result["successes"][-1]
    assert answer["recovered"] is True
    assert answer["position"]["epoch"] == epoch
    assert answer["position"]["offset"] - lost["offset"] >= 10, (answer, lost)
    assert result["last"]["port"] == ports[1]
    assert result["last"]["offsets"] == list(range(lost["offset"] + 1, total + 1))
    assert result["position_after"] == {"epoch": epoch, "offset": total}
    assert_clean_logs(nodes[1:])


def wait_for_log(node: ServerProcess, text: str, count: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while node.log().count(text) < count:
        assert time.monotonic() < deadline, f"no {text!r} in the log\n{node.log()}"
        assert node.process.poll() is None, node.log()
        time.sleep(0.05)


def test_streams_lost_with_redis_resync_once(
    nodes: list[ServerProcess], redis_server: RedisServer
) -> None:
    back_on_redis = "is reachable again"
    with Scenario(nodes[0], "recovery_cluster_epoch", peers=nodes[1:]) as scenario:
        scenario.wait_stage("restart-redis")
        redis_server.stop()
        redis_server.start()  # the same port, empty: the fixture's Redis keeps nothing on disk
        for node in nodes:
            wait_for_log(node, back_on_redis, count=1)
        scenario.resume("restart-redis")
        result = scenario.finish(timeout=75)

    ports = [node.port for node in nodes]
    new_epoch = result["new_epoch_position"]["epoch"]
    assert [c["client"] for c in result["clients"]] == ["pusher-js-8", "laravel-echo"]
    for client, (first, back) in zip(result["clients"], [(0, 2), (1, 0)], strict=True):
        epoch = client["successes"][0]["position"]["epoch"]
        assert epoch != new_epoch
        # 6..10 (the new epoch's 1..5) were published while the client was away: one
        # onResync, one overtone:resync on the channel (Echo's listen), after the resubscription
        # and before any later event; nothing old, nothing twice.
        resync = ["onResync", "overtone:resync"]
        assert client["timeline"] == [*range(1, 6), *resync, *range(11, 16)], client
        assert client["resyncs"] == [
            {"channel": "recovery-cluster-epoch", "position": {"epoch": new_epoch, "offset": 5}}
        ]
        assert client["position_before_cut"] == {"epoch": epoch, "offset": 5}
        assert [recover(s) for s in client["subscribes"]] == [
            None,
            {"epoch": epoch, "offset": 5, "socket_id": client["first_socket"]},
        ]
        assert client["successes"][-1] == {
            "position": {"epoch": new_epoch, "offset": 5},
            "recovered": False,
        }
        assert client["position_after_resync"] == {"epoch": new_epoch, "offset": 5}
        assert client["position_at_end"] == {"epoch": new_epoch, "offset": 10}
        assert client["proxy_targets"] == [ports[first], ports[back]]
        # The reconnect attempt made while the network was down waited for it, then went on.
        assert client["proxy_held"] >= 1
        assert client["proxy_refused"] == 0
        assert client["states"][-1] == "connected"
    assert_clean_logs(nodes)


def test_to_others_event_is_skipped_not_replayed_on_another_node(
    nodes: list[ServerProcess],
) -> None:
    result = run(nodes, "recovery_cluster_others", timeout=60)

    base = result["base_offset"]
    assert base == 0
    # The app never got 2 or 4 (sent "to others" of its first connection), got every other
    # event once, in order, and was not asked to reload.
    assert result["received"] == [1, 3, 5, 6]
    assert [e for e in result["channel_events"] if not e.startswith("pusher:")] == ["tick"] * 4
    assert result["timeline_extra"] == []
    assert result["resyncs"] == []
    assert result["first_offsets"] == [1]  # node 0 did not send 2 live
    ports = [node.port for node in nodes]
    assert result["proxy_targets"] == [ports[0], ports[1]]
    assert result["proxy_held"] >= 1 and result["proxy_refused"] == 0
    assert result["cut_ms"] >= 5000
    # The resubscribe on node 1 names the last event seen (1) and the connection that saw it;
    # node 1 recovers: skipped 2, 3, skipped 4, 5, then the live 6.
    epoch = result["successes"][0]["position"]["epoch"]
    assert result["position_before_cut"] == {"epoch": epoch, "offset": 1}
    assert [recover(s) for s in result["subscribes"]] == [
        None,
        {"epoch": epoch, "offset": 1, "socket_id": result["socket_id"]},
    ]
    assert result["successes"][-1] == {"position": {"epoch": epoch, "offset": 5}, "recovered": True}
    last = result["last"]
    assert last["port"] == ports[1]
    assert last["sequence"] == [
        ["pusher_internal:subscription_succeeded", None],
        ["pusher_internal:skipped", 2],
        ["tick", 3],
        ["pusher_internal:skipped", 4],
        ["tick", 5],
        ["tick", 6],
    ]
    assert result["position_after_recovery"] == {"epoch": epoch, "offset": 5}
    assert result["position_at_end"] == {"epoch": epoch, "offset": 6}
    assert result["last_socket"] != result["socket_id"]
    assert_clean_logs(nodes)


def test_chromium_page_recovers_on_another_node(nodes: list[ServerProcess]) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    result = run(nodes, "recovery_cluster_browser", timeout=100)

    assert result["problems"] == []
    assert "Chrome/" in result["user_agent"]
    # The <script> tag loaded the add-on from node 2 itself.
    [served] = [s for s in result["scripts"] if s["url"].endswith("/overtone/recovery.js")]
    assert served == {"url": f"{nodes[2].http_url}/overtone/recovery.js", "status": 200}
    # Every event on the page once, in order, across the cut and the change of node.
    assert result["received"] == list(range(1, 152))
    assert result["listed"] == 151
    assert result["resyncs"] == []
    reconnected(result)
    ports = [node.port for node in nodes]
    assert result["proxy_targets"] == [ports[0], ports[1]]
    epoch = result["successes"][0]["position"]["epoch"]
    assert result["position_before_cut"] == {"epoch": epoch, "offset": 20}
    assert recover(result["subscribes"][-1]) == {
        "epoch": epoch,
        "offset": 20,
        "socket_id": result["first_socket"],
    }
    answer = result["successes"][-1]
    assert answer["recovered"] is True
    assert 120 <= answer["position"]["offset"] <= 150
    assert result["last"]["port"] == ports[1]
    assert result["last"]["offsets"] == list(range(21, 152))
    assert result["position_after"] == {"epoch": epoch, "offset": 151}
    assert_clean_logs(nodes)


def test_rolling_replacement_of_every_node_loses_nothing(
    nodes: list[ServerProcess], redis_server: RedisServer, tmp_path: Path
) -> None:
    replacements: list[ServerProcess] = []
    try:
        with Scenario(nodes[0], "recovery_cluster_rolling", peers=nodes[1:]) as scenario:
            for index, node in enumerate(nodes):
                scenario.wait_stage(f"drain-{index}", timeout=20)
                assert node.stop() == 0, node.log()  # SIGTERM: drain with 4200, exit 0
                assert "Traceback" not in node.log(), node.log()
                workdir = tmp_path / f"replacement-{index}"
                workdir.mkdir()
                replacement = start_server(workdir, node_env(redis_server), port=node.port)
                replacements.append(replacement)
                scenario.resume(f"drain-{index}")
            result = scenario.finish(timeout=40)
    finally:
        for replacement in replacements:
            replacement.stop()

    total = result["total"]
    assert result["received"] == list(range(1, total + 1))
    assert result["timeline_extra"] == []
    assert result["resyncs"] == []
    # Published through node 2, then through the new node 0, then the new node 1.
    assert all(count > 20 for count in result["per_node"]), result["per_node"]
    epoch = result["successes"][0]["position"]["epoch"]
    # One epoch throughout: Redis and the other nodes kept the history of every restart.
    assert result["successes"][1:] == [
        {"position": {"epoch": epoch, "offset": s["position"]["offset"]}, "recovered": True}
        for s in result["successes"][1:]
    ]
    assert len(result["successes"]) == 4
    ports = [node.port for node in nodes]
    connections = result["connections"]
    assert [c["port"] for c in connections] == [ports[0], ports[1], ports[2], ports[0]]
    # Each drained connection was told 4200 (reconnect at once); each resubscribe recovered
    # from the last offset the previous connection carried, and went on without a gap.
    offset = 0
    for index, conn in enumerate(connections):
        if index > 0:
            assert conn["recover"]["offset"] == offset, connections
            assert conn["recover"]["epoch"] == epoch
        else:
            assert conn["recover"] is None
        assert conn["offsets"] == list(range(offset + 1, offset + 1 + len(conn["offsets"])))
        assert [e["code"] for e in conn["errors"]] == ([4200] if index < 3 else [])
        offset += len(conn["offsets"])
    assert offset == total
    assert result["position_after"] == {"epoch": epoch, "offset": total}
    assert_clean_logs([*nodes, *replacements])


def test_connected_clients_are_told_to_reload_after_an_outage(
    nodes: list[ServerProcess], redis_server: RedisServer
) -> None:
    with Scenario(nodes[0], "recovery_cluster_stay", peers=nodes[1:]) as scenario:
        scenario.wait_stage("stop-redis")
        redis_server.stop()
        for node in nodes:
            wait_for_log(node, "is unreachable", count=1)
        scenario.resume("stop-redis")
        scenario.wait_stage("start-redis")
        redis_server.start()  # the same port, empty
        for node in nodes:
            wait_for_log(node, "is reachable again", count=1)
        scenario.resume("start-redis")
        result = scenario.finish(timeout=90)

    new_epoch = result["new_epoch_position"]["epoch"]
    assert [c["client"] for c in result["clients"]] == ["pusher-js-8", "laravel-echo"]
    for client in result["clients"]:
        # 6..10 reached node 2's clients only: these were told to reload without reconnecting,
        # and never got them late; the later events came as usual. Told once, or twice when
        # their node read the stream again before node 2 restarted it (the second names the
        # epoch the later events come in).
        timeline = client["timeline"]
        told = ["onResync", "overtone:resync"]
        assert timeline in (
            [*range(1, 6), *told, *range(11, 16)],
            [*range(1, 6), *told, *told, *range(11, 16)],
        ), timeline
        assert client["socket_at_end"] == client["first_socket"]
        assert client["subscribes"] == 1
        resyncs = client["resyncs"]
        assert {r["channel"] for r in resyncs} == {"recovery-cluster-stay"}
        assert resyncs[-1]["position"]["epoch"] == new_epoch
        assert client["position_before"]["epoch"] != new_epoch
        assert client["position_at_end"]["epoch"] == new_epoch
    assert_clean_logs(nodes)
