"""Processes the benchmarks start and stop by PID: redis-server and overtone nodes on fixed
ports (restartable after a kill), and a local cluster of both."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from benchmarks.credentials import Creds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ping_redis(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/up", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """SIGTERM one process we started (by its PID), SIGKILL if it does not exit."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class RedisProc:
    """A redis-server on a fixed port, restartable; no persistence unless ``appendonly``."""

    def __init__(self, workdir: Path, port: int = 0, appendonly: bool = False) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.appendonly = appendonly
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        cmd = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        cmd += ["--appendonly", "yes" if self.appendonly else "no", "--dir", str(self.workdir)]
        cmd += ["--logfile", str(self.workdir / f"redis-{self.port}.log")]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not ping_redis(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else 0


class NodeProc:
    """One ``overtone start`` on a fixed port (started again on the same port after a kill)."""

    def __init__(self, workdir: Path, env: dict[str, str], port: int = 0) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"overtone-{self.port}.log"
        self.starts = 0

    def start(self, seconds: float = 20.0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REVERB_", "OVERTONE_"))}
        env.update(self.env)
        env["OVERTONE_PID_FILE"] = str(self.workdir / f"overtone-{self.port}.pid")
        cmd = [sys.executable, "-m", "overtone", "start", "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port)]
        self.starts += 1
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + seconds
        while not up(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"overtone did not start on {self.port}: {self.log()[-800:]}")
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        stop_process(self.proc)

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else 0


def cluster_env(creds: Creds, redis_url: str, prefix: str) -> dict[str, str]:
    return {
        "REVERB_APP_ID": creds.app_id,
        "REVERB_APP_KEY": creds.key,
        "REVERB_APP_SECRET": creds.secret,
        "REVERB_SCALING_ENABLED": "true",
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": prefix,
        "OVERTONE_HEARTBEAT_INTERVAL": "0.5",
        "OVERTONE_NODE_TIMEOUT": "2.5",
        "OVERTONE_TICK_INTERVAL": "0.1",
    }


REACHABLE = "Redis is reachable again"


def wait_reachable(logs: list[Callable[[], str]], before: list[int], seconds: float) -> bool:
    """Wait until every node logged one more "Redis is reachable again" than ``before``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if all(log().count(REACHABLE) > seen for log, seen in zip(logs, before, strict=True)):
            return True
        time.sleep(0.05)
    return False


class Controller(Protocol):
    """What the scenario needs from the cluster: ports, a SIGKILL, two restarts."""

    creds: Creds

    @property
    def ports(self) -> list[int]: ...

    def kill(self, index: int) -> None:
        """SIGKILL node ``index``."""

    def restart(self, index: int) -> None:
        """Start node ``index`` again on its port; return once it answers ``/up``."""

    def restart_redis(self) -> None:
        """SIGTERM Redis, start it again on its port; return once every node is back on it."""


class LocalCluster:
    """Redis and N nodes in a temporary directory: the benchmark's :class:`Controller`."""

    def __init__(self, workdir: Path, nodes: int, appendonly: bool, creds: Creds) -> None:
        self.creds = creds
        self.redis = RedisProc(workdir, appendonly=appendonly)
        self.redis.start()
        env = cluster_env(creds, self.redis.url, f"chaos{self.redis.port}:")
        self.nodes = [NodeProc(workdir, env) for _ in range(nodes)]
        for node in self.nodes:
            node.start()

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def pids(self) -> list[int]:
        return [node.pid for node in self.nodes] + [self.redis.pid]

    def kill(self, index: int) -> None:
        self.nodes[index].kill()

    def restart(self, index: int) -> None:
        self.nodes[index].start()

    def restart_redis(self) -> None:
        live = [node for node in self.nodes if node.pid]
        before = [node.log().count(REACHABLE) for node in live]
        self.redis.stop()
        self.redis.start()
        wait_reachable([node.log for node in live], before, 20.0)

    def close(self) -> None:
        for node in self.nodes:
            node.stop()
        self.redis.stop()
