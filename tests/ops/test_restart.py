"""``overtone restart``: a single server, workers one at a time, and a whole cluster."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from support.rawws import RawClient
from support.redis_server import RedisServer
from support.servers import ServerProcess, scaled, start_server


def restart(server: ServerProcess, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "overtone", "restart", *extra],
        env={**os.environ, **server.env},
        capture_output=True,
        text=True,
        timeout=scaled(20),
        check=False,
    )


async def test_restart_drains_a_single_server_with_4200(server: ServerProcess) -> None:
    client = await RawClient.connect(server.port)
    await client.established()
    result = await asyncio.to_thread(restart, server)
    assert result.returncode == 0, result.stderr
    assert "drain and restart" in result.stdout
    assert (await client.recv_json())["data"]["code"] == 4200
    assert await client.recv_close() == 4200
    client.close()
    assert await asyncio.to_thread(server.process.wait, scaled(15)) == 0


def test_restart_without_a_server_says_so(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "overtone", "restart", "--pid-file", str(tmp_path / "none.pid")],
        capture_output=True,
        text=True,
        timeout=scaled(20),
        check=False,
    )
    assert result.returncode == 1 and "no running server" in result.stderr


async def test_rolling_restart_of_workers_under_load_refuses_nothing(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    env = {"REVERB_SCALING_ENABLED": "true", "REDIS_URL": redis_server.url}
    server = start_server(tmp_path, env, args=("--workers", "2"))
    try:
        await _wait_for_log(server, "ready (pid", count=2)
        clients = [await RawClient.connect(server.port) for _ in range(20)]
        for client in clients:
            await client.established()
        attempts, refused = 0, 0
        stop = asyncio.Event()

        async def keep_connecting() -> None:
            nonlocal attempts, refused
            while not stop.is_set():
                attempts += 1
                probe = None
                try:
                    probe = await RawClient.connect(server.port)
                    await probe.established()
                except (OSError, AssertionError, asyncio.IncompleteReadError, TimeoutError):
                    refused += 1
                finally:
                    if probe is not None:
                        probe.close()
                await asyncio.sleep(0.01)

        load = asyncio.create_task(keep_connecting())
        started = time.monotonic()
        result = await asyncio.to_thread(restart, server)
        assert result.returncode == 0, result.stderr
        assert "rolling restart" in result.stdout
        for client in clients:  # every old client is told to reconnect
            assert await client.recv_close(timeout=30) == 4200
            client.close()
        await _wait_for_log(server, "ready (pid", count=4)
        back = [await RawClient.connect(server.port) for _ in range(20)]
        for client in back:
            await client.established()
            client.close()
        elapsed = time.monotonic() - started
        stop.set()
        await load
        print(
            f"rolling restart: {attempts} connection attempts, {refused} refused, {elapsed:.1f} s"
        )
        assert attempts > 20 and refused == 0
        assert server.process.poll() is None  # the supervisor itself stays up
    finally:
        assert server.stop() == 0


async def test_cluster_restart_drains_every_node_one_after_the_other(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    env = {
        "REVERB_SCALING_ENABLED": "true",
        "REDIS_URL": redis_server.url,
        "OVERTONE_RESTART_STAGGER": "0.5",
    }
    nodes = [start_server(tmp_path, env) for _ in range(2)]
    try:
        await asyncio.sleep(0.3)
        result = await asyncio.to_thread(restart, nodes[0], "--cluster")
        assert result.returncode == 0, result.stderr
        assert "from 2 node(s)" in result.stdout
        codes = [await asyncio.to_thread(n.process.wait, scaled(15)) for n in nodes]
        assert codes == [0, 0]
    finally:
        for node in nodes:
            node.stop()


async def _wait_for_log(server: ServerProcess, text: str, count: int = 1) -> None:
    deadline = time.monotonic() + scaled(30)
    while server.log().count(text) < count:
        assert time.monotonic() < deadline, server.log()
        assert server.process.poll() is None, server.log()
        await asyncio.sleep(0.1)
