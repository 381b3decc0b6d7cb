"""Start the real ``overtone start`` command as a subprocess on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

TIMEOUT_SCALE = float(os.environ.get("OVERTONE_TEST_TIMEOUT_SCALE", "1"))
APP_ID = "123456"
APP_KEY = "test-key"
APP_SECRET = "test-secret"


def scaled(seconds: float) -> float:
    """A timeout scaled by ``OVERTONE_TEST_TIMEOUT_SCALE`` for slow machines."""
    return seconds * TIMEOUT_SCALE


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """A running ``overtone start``; stop it with :meth:`stop` (SIGTERM, by PID)."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    app_id: str = APP_ID
    key: str = APP_KEY
    secret: str = APP_SECRET

    @property
    def http_url(self) -> str:
        """Base URL of the HTTP API."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """The pusher-js WebSocket URL for the test app."""
        return f"ws://{self.host}:{self.port}/app/{self.key}?protocol=7&client=js&version=8.4.0"

    def log(self) -> str:
        """Everything the server wrote so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM the server and wait for it; return its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(scaled(timeout))
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)


def start_server(
    tmp_path: Path,
    extra_env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    scheme: str = "http",
    port: int | None = None,
) -> ServerProcess:
    """Start ``python -m overtone start`` with the test app and wait until ``/up`` answers.

    ``port``: listen there (e.g. a replacement for a stopped node) instead of on a free port.
    """
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REVERB_", "OVERTONE_"))}
    env.update(
        {
            "REVERB_APP_ID": APP_ID,
            "REVERB_APP_KEY": APP_KEY,
            "REVERB_APP_SECRET": APP_SECRET,
            "REVERB_SERVER_HOST": "127.0.0.1",
            "REVERB_SERVER_PORT": str(port),
            "OVERTONE_PID_FILE": str(tmp_path / f"overtone-{port}.pid"),
        }
    )
    env.update(extra_env or {})
    log_path = tmp_path / f"overtone-{port}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "overtone", "start", *args],
            cwd=tmp_path,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = ServerProcess(process, port, log_path, env)
    deadline = time.monotonic() + scaled(15)
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"overtone exited with {process.returncode}:\n{server.log()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                pass
            if scheme == "http":
                with urllib.request.urlopen(f"{server.http_url}/up", timeout=1) as answer:
                    if answer.status == 200:
                        return server
            else:
                return server
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"overtone did not answer /up in time:\n{server.log()}")
