"""The ``overtone start`` process: configuration errors, SIGTERM drain, exit status."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from support.rawws import RawClient
from support.servers import ServerProcess, scaled


def run_start(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("REVERB_", "OVERTONE_"))}
    return subprocess.run(
        [sys.executable, "-m", "overtone", "start", "--port", "1"],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=scaled(20),
        check=False,
    )


def test_bad_configuration_fails_fast_naming_the_variable(tmp_path: Path) -> None:
    result = run_start({"REVERB_APP_ID": "1", "REVERB_APP_KEY": "k"}, tmp_path)
    assert result.returncode == 2
    assert "REVERB_APP_SECRET" in result.stderr


def test_production_refuses_development_credentials(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("APP_ENV=production\n")
    result = run_start({}, tmp_path)
    assert result.returncode == 2
    assert "production" in result.stderr


async def test_sigterm_drains_clients_with_4200_and_exits_0(server: ServerProcess) -> None:
    client = await RawClient.connect(server.port)
    await client.established()
    stopping = asyncio.get_running_loop().run_in_executor(None, server.stop)
    message = await client.recv_json(timeout=10)
    assert message["event"] == "pusher:error" and message["data"]["code"] == 4200
    assert await client.recv_close() == 4200
    client.close()
    assert await asyncio.wait_for(stopping, scaled(15)) == 0
    assert "shutting down: closing 1 connection(s)" in server.log()
