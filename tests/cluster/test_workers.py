"""``overtone start --workers 2``: two processes on one port, one cluster."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pusher

from support.rawws import RawClient
from support.redis_server import RedisServer
from support.servers import APP_ID, APP_KEY, APP_SECRET, free_port, scaled


async def test_two_workers_share_the_port_and_drain_on_sigterm(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("REVERB_", "OVERTONE_"))},
        "REVERB_APP_ID": APP_ID,
        "REVERB_APP_KEY": APP_KEY,
        "REVERB_APP_SECRET": APP_SECRET,
        "REVERB_SERVER_HOST": "127.0.0.1",
        "REVERB_SERVER_PORT": str(port),
        "REVERB_SCALING_ENABLED": "true",
        "REDIS_URL": redis_server.url,
    }
    log_path = tmp_path / "workers.log"
    with log_path.open("wb") as log:
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "overtone", "start", "--workers", "2"],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + scaled(20)
        while log_path.read_text().count("ready (pid") < 2:
            assert time.monotonic() < deadline, log_path.read_text()
            assert supervisor.poll() is None, log_path.read_text()
            await asyncio.sleep(0.1)
        clients = []
        for _ in range(12):
            client = await RawClient.connect(port)
            await client.established()
            client.send_json({"event": "pusher:subscribe", "data": {"channel": "w"}})
            await client.recv_json()
            clients.append(client)
        sdk = pusher.Pusher(
            app_id=APP_ID, key=APP_KEY, secret=APP_SECRET, host="127.0.0.1", port=port, ssl=False
        )
        await asyncio.sleep(0.3)
        assert sdk.channel_info("w", ["subscription_count"])["subscription_count"] == 12
        sdk.trigger("w", "e", "to-all")
        for client in clients:
            assert (await client.recv_json())["data"] == "to-all"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/up", timeout=5) as answer:
            assert answer.status == 200
        supervisor.send_signal(signal.SIGTERM)
        for client in clients:
            assert (await client.recv_json(timeout=10))["data"]["code"] == 4200
            assert await client.recv_close() == 4200
            client.close()
        assert await asyncio.to_thread(supervisor.wait, scaled(20)) == 0
        text = log_path.read_text()
        pids = {
            line.split("pid ")[1].rstrip(")") for line in text.splitlines() if "ready (pid" in line
        }
        assert len(pids) == 2
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
