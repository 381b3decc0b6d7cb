"""Highly available Redis for tests: a Sentinel set and a Redis Cluster, real processes.

Every process listens on 127.0.0.1 on a free port, works in its own temporary directory and
is stopped by its PID (SIGTERM, or SIGKILL to simulate a crash).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support.servers import free_port, scaled


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    for _ in range(100):
        port = free_port()
        if port + 10_000 >= 65_536:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10_000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (make test installs redis-server)")
    return found


def _command(port: int, *words: str) -> bytes:
    """Send one inline command to 127.0.0.1:port; the raw reply (b"" if unreachable)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(" ".join(words).encode() + b"\r\n")
            return sock.recv(65_536)
    except OSError:
        return b""


def _wait_answering(port: int) -> None:
    deadline = time.monotonic() + scaled(10)
    while time.monotonic() < deadline:
        if _command(port, "PING").startswith(b"+PONG"):
            return
        time.sleep(0.05)
    raise RuntimeError(f"redis on port {port} did not start")


@dataclass
class RedisProcess:
    """One ``redis-server`` (or sentinel) process."""

    port: int
    workdir: Path
    args: list[str]
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [_binary("redis-server"), *self.args],
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        _wait_answering(self.port)

    def kill(self) -> None:
        """SIGKILL (a crash: no goodbye to clients or replicas)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(scaled(10))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(scaled(10))
            except subprocess.TimeoutExpired:
                self.kill()

    def command(self, *words: str) -> bytes:
        return _command(self.port, *words)


def _server_args(port: int, workdir: Path, *extra: str) -> list[str]:
    return [
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
        *extra,
    ]


@dataclass
class SentinelSet:
    """A primary, one replica and three sentinels watching them (quorum 2)."""

    root: Path
    master_name: str = "overtone-test"
    down_after_ms: int = 1000
    servers: list[RedisProcess] = field(default_factory=list)
    sentinels: list[RedisProcess] = field(default_factory=list)

    def start(self, settle: bool = True) -> None:
        """Start everything; with ``settle``, wait until a failover is possible (the
        sentinels know the replica and each other, which takes a few seconds)."""
        try:
            self._create(settle)
        except BaseException:
            self.stop()
            raise

    def _create(self, settle: bool) -> None:
        primary_port, replica_port = free_port(), free_port()
        primary_dir, replica_dir = self.root / "primary", self.root / "replica"
        self.servers = [
            RedisProcess(primary_port, primary_dir, _server_args(primary_port, primary_dir)),
            RedisProcess(
                replica_port,
                replica_dir,
                _server_args(
                    replica_port, replica_dir, "--replicaof", "127.0.0.1", str(primary_port)
                ),
            ),
        ]
        for server in self.servers:
            server.start()
        self._wait(
            lambda: b"master_link_status:up" in self.servers[1].command("INFO", "replication")
        )
        for index in range(3):
            port = free_port()
            workdir = self.root / f"sentinel{index}"
            workdir.mkdir(parents=True, exist_ok=True)
            config = workdir / "sentinel.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {workdir}\n"
                f"sentinel monitor {self.master_name} 127.0.0.1 {primary_port} 2\n"
                f"sentinel down-after-milliseconds {self.master_name} {self.down_after_ms}\n"
                f"sentinel failover-timeout {self.master_name} 10000\n"
                f"sentinel parallel-syncs {self.master_name} 1\n"
            )
            sentinel = RedisProcess(port, workdir, [str(config), "--sentinel"])
            sentinel.start()
            self.sentinels.append(sentinel)
        if settle:
            self._wait(self._sentinels_agree)

    def _sentinels_agree(self) -> bool:
        """Every sentinel knows the replica and the other sentinels (failover can happen)."""
        for sentinel in self.sentinels:
            lines = sentinel.command("SENTINEL", "MASTER", self.master_name).split(b"\r\n")
            words = [line for line in lines if line and line[:1] not in (b"*", b"$")]
            fields = dict(zip(words[::2], words[1::2], strict=False))
            if fields.get(b"num-slaves") != b"1" or fields.get(b"num-other-sentinels") != b"2":
                return False
        return True

    def _wait(self, check: object, timeout: float = 15) -> None:
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            if check():  # type: ignore[operator]
                return
            time.sleep(0.1)
        raise RuntimeError("the Sentinel set did not settle")

    @property
    def addresses(self) -> str:
        """``OVERTONE_REDIS_SENTINELS``."""
        return ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    def primary_port(self) -> int | None:
        """The port the sentinels name as primary now (``None`` if none answers)."""
        for sentinel in self.sentinels:
            reply = sentinel.command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name)
            parts = reply.split(b"\r\n")
            if len(parts) >= 5 and parts[4].isdigit():
                return int(parts[4])
        return None

    def server_on(self, port: int) -> RedisProcess:
        return next(server for server in self.servers if server.port == port)

    def stop(self) -> None:
        for process in [*self.sentinels, *self.servers]:
            process.stop()


@dataclass
class RedisClusterSet:
    """A Redis Cluster of three primaries (no replicas), created with ``redis-cli``."""

    root: Path
    nodes: list[RedisProcess] = field(default_factory=list)

    def start(self) -> None:
        try:
            self._create()
        except BaseException:
            self.stop()
            raise

    def _node(self, index: int) -> RedisProcess:
        port = free_cluster_port()
        workdir = self.root / f"node{index}"
        args = _server_args(
            port,
            workdir,
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            str(workdir / "nodes.conf"),
            "--cluster-node-timeout",
            "2000",
        )
        node = RedisProcess(port, workdir, args)
        node.start()
        return node

    def _create(self) -> None:
        for index in range(3):
            self.nodes.append(self._node(index))
        subprocess.run(
            [
                _binary("redis-cli"),
                "--cluster",
                "create",
                *(f"127.0.0.1:{node.port}" for node in self.nodes),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=scaled(30),
        )
        self.wait_ok()

    def wait_ok(self, timeout: float = 15) -> None:
        """Until every node reports ``cluster_state:ok``."""
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            if all(b"cluster_state:ok" in node.command("CLUSTER", "INFO") for node in self.nodes):
                return
            time.sleep(0.1)
        raise RuntimeError("the Redis Cluster did not reach cluster_state:ok")

    @property
    def addresses(self) -> str:
        """``OVERTONE_REDIS_CLUSTER_NODES`` (every node; one is enough)."""
        return ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def add_replica(self, primary: RedisProcess) -> RedisProcess:
        """Start a fourth node and make it a replica of ``primary`` (so it can fail over)."""
        replica = self._node(len(self.nodes))
        self.nodes.append(replica)
        primary_id = primary.command("CLUSTER", "MYID").split(b"\r\n")[1].decode()
        subprocess.run(
            [
                _binary("redis-cli"),
                "--cluster",
                "add-node",
                f"127.0.0.1:{replica.port}",
                f"127.0.0.1:{primary.port}",
                "--cluster-slave",
                "--cluster-master-id",
                primary_id,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=scaled(30),
        )
        deadline = time.monotonic() + scaled(15)
        while b"master_link_status:up" not in replica.command("INFO", "replication"):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster replica did not sync")
            time.sleep(0.1)
        self.wait_ok()
        return replica

    @property
    def node_addresses(self) -> tuple[tuple[str, int], ...]:
        """The nodes as :attr:`overtone.config.Scaling.cluster_nodes`."""
        return tuple(("127.0.0.1", node.port) for node in self.nodes)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def running(self) -> bool:
        return all(node.process is not None and node.process.poll() is None for node in self.nodes)

    def flush(self) -> None:
        """Delete every key on every node."""
        for node in self.nodes:
            node.command("FLUSHALL")

    def owner_of(self, key: str) -> RedisProcess:
        """The primary serving ``key``'s slot."""
        owner = self.claimed_by(key)
        if owner is None:
            raise RuntimeError(f"no primary serves {key!r}")
        return owner

    def claimed_by(self, key: str) -> RedisProcess | None:
        """The live node that says it serves ``key``'s slot (``None`` during a failover)."""
        slot = -1
        for node in self.nodes:
            reply = node.command("CLUSTER", "KEYSLOT", key)
            if reply.startswith(b":"):
                slot = int(reply.strip().lstrip(b":"))
                break
        for node in self.nodes:
            for line in node.command("CLUSTER", "NODES").decode().splitlines():
                fields = line.split()
                if len(fields) < 8 or "myself" not in fields[2]:
                    continue
                for span in fields[8:]:
                    low, _, high = span.partition("-")
                    if low.isdigit() and int(low) <= slot <= int(high or low):
                        return node
        return None

    def restart(self) -> None:
        """Start the stopped nodes again (they keep their slots in ``nodes.conf``)."""
        for node in self.nodes:
            node.start()
        self.wait_ok()
