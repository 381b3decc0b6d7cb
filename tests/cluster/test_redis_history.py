"""History across three ``overtone start`` processes on a real Redis: the same offsets on
every node, recovery on another node (also after the client's node was SIGKILLed), and a
new epoch, never a silent gap, when Redis lost its data."""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.request
from pathlib import Path
from typing import Any

from cluster.test_redis_nodes import cluster_env, eventually, sdk
from ops.test_restart import restart
from support.rawws import RawClient
from support.redis_server import RedisServer
from support.servers import APP_ID, ServerProcess, scaled, start_server
from support.signing import signed_target


async def subscribe(node: ServerProcess, channel: str, **extra: Any) -> tuple[RawClient, Any]:
    client = await RawClient.connect(node.port)
    await client.established()
    client.send_json({"event": "pusher:subscribe", "data": {"channel": channel, **extra}})
    reply = await client.recv_json()
    assert reply["event"] == "pusher_internal:subscription_succeeded", reply
    return client, reply


async def offsets(client: RawClient, count: int) -> list[tuple[str, int]]:
    got = []
    for _ in range(count):
        message = await client.recv_json(timeout=10)
        got.append((message["event"], message["offset"]))
    return got


def trigger(node: ServerProcess, *names: str) -> None:
    for name in names:
        sdk(node).trigger("news", name, name)


def position(node: ServerProcess, channel: str) -> dict[str, Any]:
    target = signed_target("GET", f"/apps/{APP_ID}/channels/{channel}", params={"info": "position"})
    with urllib.request.urlopen(node.http_url + target, timeout=10) as answer:
        return json.loads(answer.read())["position"]  # type: ignore[no-any-return]


async def test_offsets_agree_and_a_client_recovers_on_another_node(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    nodes = [start_server(tmp_path, cluster_env(redis_server)) for _ in range(3)]
    try:
        a, first = await subscribe(nodes[0], "news")
        b, second = await subscribe(nodes[1], "news")
        assert first["position"] == second["position"]
        epoch = first["position"]["epoch"]
        await eventually(
            lambda: (
                sdk(nodes[2]).channel_info("news", ["subscription_count"])["subscription_count"]
                == 2
            )
        )
        trigger(nodes[2], "one", "two")
        assert await offsets(a, 2) == await offsets(b, 2) == [("one", 1), ("two", 2)]
        a.close()
        trigger(nodes[1], "three", "four")
        assert await offsets(b, 2) == [("three", 3), ("four", 4)]
        # A node that never followed the stream reads it from Redis, over HTTP too.
        assert position(nodes[2], "news") == {"epoch": epoch, "offset": 4}
        back, answer = await subscribe(nodes[2], "news", recover={"epoch": epoch, "offset": 2})
        assert answer["recovered"] is True
        assert answer["position"] == {"epoch": epoch, "offset": 4}
        assert await offsets(back, 2) == [("three", 3), ("four", 4)]
        trigger(nodes[0], "five")
        assert await offsets(back, 1) == [("five", 5)]
        # The client's node is killed: it moves to another node and misses nothing.
        trigger(nodes[0], "six")
        assert await offsets(back, 1) == [("six", 6)]
        nodes[2].process.send_signal(signal.SIGKILL)
        nodes[2].process.wait()
        trigger(nodes[0], "seven")
        moved, answer = await subscribe(nodes[1], "news", recover={"epoch": epoch, "offset": 6})
        assert answer["recovered"] is True
        assert await offsets(moved, 1) == [("seven", 7)]
        for client in (b, back, moved):
            client.close()
    finally:
        for node in nodes:
            node.stop()


async def test_redis_that_lost_its_data_means_a_new_epoch(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    nodes = [start_server(tmp_path, cluster_env(redis_server)) for _ in range(2)]
    try:
        a, first = await subscribe(nodes[0], "news")
        epoch = first["position"]["epoch"]
        trigger(nodes[1], "one")
        assert await offsets(a, 1) == [("one", 1)]
        a.close()
        redis_server.stop()  # no persistence: every stream is gone
        await asyncio.sleep(0.3)
        redis_server.start()
        for node in nodes:
            await eventually(lambda node=node: "reachable again" in node.log(), timeout=15)  # type: ignore[misc]
        back, answer = await subscribe(nodes[1], "news", recover={"epoch": epoch, "offset": 1})
        assert answer["recovered"] is False
        assert answer["position"]["epoch"] != epoch
        trigger(nodes[0], "two")
        message = await back.recv_json(timeout=10)
        assert (message["event"], message["offset"]) == ("two", 1)
        back.close()
    finally:
        for node in nodes:
            node.stop()


async def test_overtone_restart_cluster_keeps_positions(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """``overtone restart --cluster`` drains every node in turn; each is started again on its
    port (the process manager's job), and a client recovers everything it missed."""
    env = {**cluster_env(redis_server), "OVERTONE_RESTART_STAGGER": "0.5"}
    nodes = [start_server(tmp_path, env) for _ in range(2)]
    replacements: list[ServerProcess] = []
    try:
        client, first = await subscribe(nodes[0], "news")
        epoch = first["position"]["epoch"]
        trigger(nodes[1], "one")
        assert await offsets(client, 1) == [("one", 1)]
        result = await asyncio.to_thread(restart, nodes[0], "--cluster")
        assert result.returncode == 0, result.stderr
        names = iter(["two", "three", "four", "five"])
        for node in nodes:  # as each node drains and exits, publish on the other, restart it
            assert await asyncio.to_thread(node.process.wait, scaled(15)) == 0
            up = next((n for n in (*nodes, *replacements) if n.process.poll() is None), None)
            if up is not None:
                trigger(up, next(names))
            replacements.append(start_server(tmp_path, env, port=node.port))
        trigger(replacements[0], "last")
        back, answer = await subscribe(
            replacements[1], "news", recover={"epoch": epoch, "offset": 1}
        )
        assert answer["recovered"] is True
        missed = await offsets(back, answer["position"]["offset"] - 1)
        assert [offset for _, offset in missed] == list(range(2, answer["position"]["offset"] + 1))
        assert missed[-1][0] == "last"
        client.close()
        back.close()
    finally:
        for node in (*nodes, *replacements):
            node.stop()
