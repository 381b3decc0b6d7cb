"""Chaos under load, with accounting: a cluster keeps publishing while a node is SIGKILLed and
restarted and Redis is restarted empty; every event is counted per client.

Three ``overtone start`` nodes (``REVERB_SCALING_ENABLED=true``, short heartbeat and node
timeout) share one fresh ``redis-server`` (a free port, a temporary directory, no persistence
unless ``--appendonly``). Subscribers are spread over the nodes, in three classes:

- ``plain``: Pusher-protocol clients on public channels; after a lost connection they
  subscribe again, without ``recover`` (pusher-js without the add-on).
- ``recovering``: the same, but they keep the last position seen (``position`` of
  ``subscription_succeeded``, ``offset`` of each event) and subscribe again with
  ``recover: {epoch, offset}`` (protocol.md §8, what the recovery add-on does).
- ``presence``: plain clients on a presence channel, each its own user id (for ghost
  members after the kill).

A client whose connection is lost reconnects to the next node that accepts it (what
pusher-js does through a load balancer). A publisher sends numbered events through the
signed HTTP API, round-robin over the nodes, at a steady rate; an event counts as published
only when the API answered 200 (failures are counted apart). Timeline: steady load, SIGKILL
one node, start it again on its port, later SIGTERM Redis and start it again on the same port
(empty), steady load, stop.

Accounting per client: *expected* = events published (200) after the client's first
subscription, *delivered* = those it received, *duplicated* = receipts beyond the first (must
be 0), *lost* = expected but never received. A loss is attributed to the failure window its
publication overlaps (``kill``, ``restart``, ``redis``) or to ``other``. A recovering client's
loss is *told to reload* when it lies in the gap of a resubscription answered
``recovered: false``, else it is *silent*. After the load stops, every node's counts are
compared with the clients' truth: ``subscription_count`` per channel, presence users (ghost
members = reported but not connected), ``/connections``.

    python -m benchmarks.chaos             # ~75 s: 3 nodes, 300 subscribers, 40 events/s
    python -m benchmarks.chaos --quick     # ~35 s
    python -m benchmarks.chaos --appendonly   # Redis with AOF: its restart keeps the streams

The scenario (:func:`run_chaos`) drives any :class:`Controller`; the test suite brings one
built on its own process helpers (tests/cluster/test_chaos.py).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from benchmarks.wsclient import GUID, HttpConn, Signer, mask_bytes

# -- credentials and the signed HTTP API ------------------------------------------------------


@dataclass(frozen=True)
class Creds:
    app_id: str
    key: str
    secret: str


BENCH_APP = Creds("bench", "bench-key", "bench-secret")


def sign(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def signed_url(
    creds: Creds, port: int, path: str, params: dict[str, str] | None = None, host: str = ""
) -> str:
    """A signed ``GET`` URL (Pusher HTTP API, auth_version 1.0)."""
    query = {
        **(params or {}),
        "auth_key": creds.key,
        "auth_timestamp": str(int(time.time())),
        "auth_version": "1.0",
    }
    canonical = "&".join(f"{k}={v}" for k, v in sorted(query.items()))
    signature = sign(creds.secret, f"GET\n{path}\n{canonical}")
    return f"http://{host or '127.0.0.1'}:{port}{path}?{canonical}&auth_signature={signature}"


def api_get(creds: Creds, port: int, path: str, params: dict[str, str] | None = None) -> Any:
    """A signed GET's JSON answer (blocking; raises on failure)."""
    with urllib.request.urlopen(signed_url(creds, port, path, params), timeout=5) as answer:
        return json.loads(answer.read())


def channel_auth(creds: Creds, socket_id: str, channel: str, channel_data: str = "") -> str:
    message = f"{socket_id}:{channel}" + (f":{channel_data}" if channel_data else "")
    return f"{creds.key}:{sign(creds.secret, message)}"


# -- processes: the benchmark's own (the test suite uses tests/support) ----------------------


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


# -- clients -----------------------------------------------------------------------------------


class Lost(Exception):
    """The connection ended (EOF, reset, close frame)."""


@dataclass
class Gap:
    """One lost connection: when it was lost, when the channel was subscribed again, and how
    the resubscription was answered (``None``: not asked to recover)."""

    lost: float
    back: float = 0.0
    recovered: bool | None = None
    received_before: int = 0  # receipts before the loss (index into ``Client.order``)
    unasked: bool = False
    """The server said ``recovered: false`` on a running subscription (after a cluster
    outage): ``lost`` is when the stream was last seen whole, ``back`` when it was said."""


@dataclass
class Client:
    name: str
    kind: str  # plain | recovering | presence
    channel: str
    ports: list[int]
    home: int  # index of the first node
    creds: Creds
    user: str = ""
    received: Counter[int] = field(default_factory=Counter)
    order: list[int] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    first_sub: float = 0.0
    subscribed: bool = False
    connected: bool = False
    node: int = -1
    position: tuple[str, int] | None = None
    intact: float = 0.0  # when the stream was last seen whole (subscribed, or in order)
    anomalies: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    writer: asyncio.StreamWriter | None = None

    @property
    def recovering(self) -> bool:
        return self.kind == "recovering"

    async def run(self, stop: asyncio.Event) -> None:
        """Stay subscribed until ``stop``: reconnect to the next node that accepts."""
        index = self.home
        while not stop.is_set():
            port = self.ports[index % len(self.ports)]
            try:
                await self.session(port, index % len(self.ports), stop)
            except (OSError, Lost, asyncio.IncompleteReadError, TimeoutError) as exc:
                if len(self.errors) < 5:
                    self.errors.append(f"{port}: {exc!r}"[:120])
            finally:
                self.connected = False
                if self.writer is not None:
                    self.writer.close()
                    self.writer = None
            if stop.is_set():
                return
            if self.subscribed:
                self.subscribed = False
                self.gaps.append(Gap(time.monotonic(), received_before=len(self.order)))
            index += 1  # the load balancer sends the next attempt to another node
            await asyncio.sleep(random.uniform(0.05, 0.3))

    async def session(self, port: int, node: int, stop: asyncio.Event) -> None:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 3)
        self.writer = writer
        key = base64.b64encode(os.urandom(16))
        writer.write(
            f"GET /app/{self.creds.key}?protocol=7&client=chaos&version=1.0 HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key.decode()}\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        if not head.startswith(b"HTTP/1.1 101") or accept not in head:
            raise Lost(f"handshake {head[:40]!r}")
        self.connected, self.node = True, node
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while True:
                read = asyncio.ensure_future(self.frame(reader))
                done, _ = await asyncio.wait({read, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if stopping in done:
                    read.cancel()
                    with contextlib.suppress(BaseException):
                        await read
                    return
                opcode, payload = read.result()
                if opcode == 0x1:
                    self.text(payload)
                elif opcode == 0x9:
                    self.send(payload[:125], 0xA)
                elif opcode == 0x8:
                    raise Lost("close frame")
        finally:
            stopping.cancel()

    @staticmethod
    async def frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
        head = await reader.readexactly(2)
        length = head[1] & 0x7F
        if length == 126:
            length = struct.unpack("!H", await reader.readexactly(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", await reader.readexactly(8))[0]
        return head[0] & 0x0F, await reader.readexactly(length)

    def send(self, payload: bytes, opcode: int = 0x1) -> None:
        if self.writer is None:
            return
        n, mask = len(payload), os.urandom(4)
        if n < 126:
            head = bytes((0x80 | opcode, 0x80 | n))
        else:
            head = bytes((0x80 | opcode, 0xFE)) + n.to_bytes(2, "big")
        self.writer.write(head + mask + mask_bytes(payload, mask))

    def text(self, payload: bytes) -> None:
        message = json.loads(payload)
        event = message.get("event")
        if event == "pusher:connection_established":
            self.subscribe(json.loads(message["data"])["socket_id"])
        elif event == "pusher:ping":
            self.send(b'{"event":"pusher:pong","data":{}}')
        elif event == "pusher_internal:subscription_succeeded":
            self.subscribed_now(message)
        elif event in ("pusher:error", "pusher:subscription_error"):
            self.anomalies[str(event)] += 1
        elif event == "e" and message.get("channel") == self.channel:
            self.event(message)

    def subscribe(self, socket_id: str) -> None:
        data: dict[str, Any] = {"channel": self.channel}
        if self.channel.startswith("presence-"):
            channel_data = json.dumps({"user_id": self.user})
            data["channel_data"] = channel_data
            data["auth"] = channel_auth(self.creds, socket_id, self.channel, channel_data)
        if self.recovering and self.position is not None:
            data["recover"] = {"epoch": self.position[0], "offset": self.position[1]}
        self.send(json.dumps({"event": "pusher:subscribe", "data": data}).encode())

    def subscribed_now(self, message: dict[str, Any]) -> None:
        now = time.monotonic()
        running = self.subscribed and not (self.gaps and not self.gaps[-1].back)
        if running and message.get("recovered") is False:  # told to reload, unasked
            gap = Gap(self.intact, now, False, len(self.order), unasked=True)
            self.gaps.append(gap)
            self.position = None
        self.subscribed = True
        if not self.first_sub:
            self.first_sub = now
        position = message.get("position")
        at = (str(position["epoch"]), int(position["offset"])) if position else None
        recovered = message.get("recovered")
        if self.gaps and not self.gaps[-1].back:
            gap = self.gaps[-1]
            gap.back = now
            gap.recovered = recovered if isinstance(recovered, bool) else None
        if self.recovering and recovered is True and self.position is not None and at:
            self.position = (at[0], self.position[1])  # the missed events follow
        else:
            self.position = at
        self.intact = now

    def event(self, message: dict[str, Any]) -> None:
        seq = int(message["data"])
        self.received[seq] += 1
        self.order.append(seq)
        offset = message.get("offset")
        if not isinstance(offset, int):
            self.anomalies["no offset"] += 1
            return
        if self.position is None:
            return
        epoch, last = self.position
        if offset == last + 1:
            self.intact = time.monotonic()
        if offset != last + 1:
            self.anomalies["offset jump" if offset > last else "offset went back"] += 1
        if offset > last:  # as the recovery add-on: the position only moves forward
            self.position = (epoch, offset)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# -- the publisher -----------------------------------------------------------------------------


@dataclass
class Published:
    seq: int
    node: int
    sent: float
    done: float
    status: int


@dataclass
class Publisher:
    creds: Creds
    ports: list[int]
    channels: list[str]
    rate: float
    log: list[Published] = field(default_factory=list)
    conns: dict[int, HttpConn] = field(default_factory=dict)
    down_until: dict[int, float] = field(default_factory=dict)

    async def run(self, stop: asyncio.Event) -> None:
        seq, turn = 0, 0
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            if now < next_at:
                await asyncio.sleep(next_at - now)
            next_at = max(next_at + interval, time.monotonic() - 1.0)
            seq += 1
            for _ in range(len(self.ports)):  # a load balancer skips a node that failed
                node = turn % len(self.ports)
                turn += 1
                if self.down_until.get(node, 0.0) <= time.monotonic():
                    break
            await self.publish(seq, node)

    async def publish(self, seq: int, node: int) -> None:
        port = self.ports[node]
        body = json.dumps({"name": "e", "channels": self.channels, "data": str(seq)}).encode()
        sent = time.monotonic()
        status = 0
        try:
            conn = self.conns.get(node)
            if conn is None or conn.lost:
                loop = asyncio.get_running_loop()
                opening = loop.create_connection(HttpConn, "127.0.0.1", port)
                conn = self.conns[node] = (await asyncio.wait_for(opening, 2))[1]
            creds = self.creds
            signer = Signer(creds.app_id, creds.key, creds.secret, "127.0.0.1", port)
            status = await asyncio.wait_for(conn.call(signer.request(body)), 3)
        except (OSError, TimeoutError):
            status = 0
        if status != 200:
            self.down_until[node] = time.monotonic() + 1.0
            bad = self.conns.pop(node, None)
            if bad is not None and bad.transport is not None:
                bad.transport.close()
        self.log.append(Published(seq, node, sent, time.monotonic(), status))

    def close(self) -> None:
        for conn in self.conns.values():
            if conn.transport is not None:
                conn.transport.close()


# -- the scenario ------------------------------------------------------------------------------


@dataclass
class Plan:
    plain: int = 100
    recovering: int = 100
    presence: int = 100
    rate: float = 40.0  # events per second, each to every channel
    warmup: float = 8.0  # steady load before the kill
    down: float = 3.0  # the killed node stays down this long
    between: float = 10.0  # steady load between the node's restart and Redis's
    after: float = 10.0  # steady load after Redis is back
    drain: float = 2.0  # after the last publication, before counting
    settle: float = 20.0  # at most this long for every node's counts to match the truth
    victim: int = 1  # the node that is SIGKILLed
    slack: float = 0.5  # seconds around a window: an event in flight at its edge belongs to it


@dataclass
class Window:
    name: str
    start: float
    end: float


PUBLIC = ("chaos-a", "chaos-b")
PRESENCE = "presence-chaos"


def make_clients(plan: Plan, ctl: Controller) -> list[Client]:
    ports = ctl.ports
    clients: list[Client] = []
    for kind, count in (
        ("plain", plan.plain),
        ("recovering", plan.recovering),
        ("presence", plan.presence),
    ):
        for i in range(count):
            channel = PRESENCE if kind == "presence" else PUBLIC[i % len(PUBLIC)]
            user = f"user-{i}" if kind == "presence" else ""
            home = i % len(ports)
            clients.append(Client(f"{kind}-{i}", kind, channel, ports, home, ctl.creds, user))
    return clients


async def wait_for(check: Callable[[], bool], seconds: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(step)
    return True


def truth(clients: list[Client]) -> dict[str, Any]:
    """What the clients know: subscribers per channel, presence users, open connections."""
    subs = Counter(client.channel for client in clients if client.subscribed)
    users = sorted({c.user for c in clients if c.subscribed and c.channel == PRESENCE})
    connections = sum(1 for client in clients if client.connected)
    return {"subs": dict(subs), "users": users, "connections": connections}


def reported(ctl: Controller, index: int) -> dict[str, Any]:
    """What node ``index`` reports (signed HTTP API; blocking)."""
    port, creds = ctl.ports[index], ctl.creds
    base = f"/apps/{creds.app_id}"
    subs = {}
    for channel in (*PUBLIC, PRESENCE):
        info = api_get(creds, port, f"{base}/channels/{channel}", {"info": "subscription_count"})
        subs[channel] = int(info.get("subscription_count", 0))
    users = api_get(creds, port, f"{base}/channels/{PRESENCE}/users")["users"]
    connections = api_get(creds, port, f"{base}/connections")["connections"]
    return {
        "subs": {k: v for k, v in subs.items() if v},
        "users": sorted(str(user["id"]) for user in users),
        "connections": int(connections),
    }


async def counts_match(ctl: Controller, clients: list[Client], seconds: float) -> dict[str, Any]:
    """Poll every node until its counts equal the clients' truth (bounded)."""
    started = time.monotonic()
    last: list[dict[str, Any]] = []
    while True:
        want = truth(clients)
        last = []
        for index in range(len(ctl.ports)):
            try:
                last.append(await asyncio.to_thread(reported, ctl, index))
            except OSError as exc:
                last.append({"error": repr(exc)})
        if all(each == want for each in last):
            return {"exact": True, "after": round(time.monotonic() - started, 2), "truth": want}
        if time.monotonic() - started > seconds:
            ghosts = [sorted(set(each.get("users", [])) - set(want["users"])) for each in last]
            return {"exact": False, "truth": want, "nodes": last, "ghosts": ghosts}
        await asyncio.sleep(0.25)


async def run_chaos(
    plan: Plan, ctl: Controller, say: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run the timeline against ``ctl``; return the accounting (see :func:`account`)."""
    t0 = time.monotonic()

    def note(text: str) -> None:
        say(f"[{time.monotonic() - t0:6.1f} s] {text}")

    clients = make_clients(plan, ctl)
    stop_clients, stop_publisher = asyncio.Event(), asyncio.Event()
    tasks = [asyncio.ensure_future(client.run(stop_clients)) for client in clients]
    windows: list[Window] = []
    publisher = Publisher(ctl.creds, ctl.ports, [*PUBLIC, PRESENCE], plan.rate)
    try:
        if not await wait_for(lambda: all(c.subscribed for c in clients), 30):
            missing = [c.name for c in clients if not c.subscribed]
            raise RuntimeError(f"{len(missing)} clients did not subscribe: {missing[:5]}")
        note(f"{len(clients)} clients subscribed; publishing {plan.rate:g} events/s")
        publishing = asyncio.ensure_future(publisher.run(stop_publisher))
        await asyncio.sleep(plan.warmup)
        start = time.monotonic()
        note(f"SIGKILL node {plan.victim} (port {ctl.ports[plan.victim]})")
        victims = [(c, len(c.gaps)) for c in clients if c.node == plan.victim]
        await asyncio.to_thread(ctl.kill, plan.victim)
        back = [(c, n) for c, n in victims]
        await wait_for(lambda: all(len(c.gaps) > n and c.gaps[-1].back for c, n in back), 15)
        note(f"the killed node's {len(victims)} clients are subscribed again elsewhere")
        await asyncio.sleep(max(0.0, plan.down - (time.monotonic() - start)))
        windows.append(Window("kill", start, time.monotonic()))  # until it is started again
        start = time.monotonic()
        await asyncio.to_thread(ctl.restart, plan.victim)
        windows.append(Window("restart", start, time.monotonic()))
        note(f"node {plan.victim} started again on port {ctl.ports[plan.victim]}")
        await asyncio.sleep(plan.between)
        start = time.monotonic()
        note("Redis: SIGTERM, then started again on its port")
        await asyncio.to_thread(ctl.restart_redis)
        windows.append(Window("redis", start, time.monotonic()))
        note("every node reached Redis again")
        await asyncio.sleep(plan.after)
        stop_publisher.set()
        await publishing
        note(f"publisher stopped after {len(publisher.log)} attempts")
        await asyncio.sleep(plan.drain)
        counts = await counts_match(ctl, clients, plan.settle)
        note(f"counts {'exact' if counts['exact'] else 'NOT exact'}: {counts}")
    finally:
        stop_publisher.set()
        stop_clients.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        publisher.close()
        for client in clients:
            client.close()
    result = account(clients, publisher.log, windows, plan.slack)
    result["counts"] = counts
    result["windows"] = [
        {"name": w.name, "start": round(w.start - t0, 2), "end": round(w.end - t0, 2)}
        for w in windows
    ]
    result["seconds"] = round(time.monotonic() - t0, 1)
    return result


def window_of(event: Published, windows: list[Window], slack: float = 0.5) -> str:
    for window in windows:
        if event.sent <= window.end + slack and event.done >= window.start - slack:
            return window.name
    return "other"


def told_to_reload(client: Client, seq: int, event: Published, slack: float = 0.5) -> bool:
    """Whether ``seq`` lies in the gap of a resubscription answered ``recovered: false``, or
    was published between the last whole-stream receipt and an unasked ``recovered: false``."""
    for gap in client.gaps:
        if gap.recovered is not False:
            continue
        if gap.unasked:
            if gap.lost - slack <= event.sent <= gap.back:
                return True
            continue
        before = client.order[: gap.received_before]
        after = client.order[gap.received_before :]
        low = max(before, default=0)
        high = min(after, default=1 << 62)
        if low < seq < high:
            return True
    return False


def account(
    clients: list[Client], log: list[Published], windows: list[Window], slack: float = 0.5
) -> dict[str, Any]:
    """Per client class: expected, delivered, duplicated, lost (by window), recoveries."""
    published = {event.seq: event for event in log if event.status == 200}
    failed = [event for event in log if event.status != 200]
    classes: dict[str, dict[str, Any]] = {}
    for client in clients:
        row = classes.setdefault(
            client.kind,
            {
                "clients": 0,
                "expected": 0,
                "delivered": 0,
                "duplicated": 0,
                "lost": 0,
                "lost_by_window": Counter[str](),
                "told_to_reload": 0,
                "silent": 0,
                "silent_by_window": Counter[str](),
                "silent_detectable": 0,
                "recovered_true": 0,
                "recovered_false": 0,
                "reconnects": 0,
                "unconfirmed": 0,
                "anomalies": Counter[str](),
                "worst": [],
            },
        )
        expected = {s for s, e in published.items() if e.sent >= client.first_sub > 0}
        got = set(client.received)
        lost = sorted(expected - got)
        row["clients"] += 1
        row["expected"] += len(expected)
        row["delivered"] += len(expected & got)
        row["duplicated"] += sum(n - 1 for n in client.received.values() if n > 1)
        row["unconfirmed"] += len(got - set(published))
        row["lost"] += len(lost)
        row["reconnects"] += len(client.gaps)
        row["recovered_true"] += sum(1 for gap in client.gaps if gap.recovered is True)
        row["recovered_false"] += sum(1 for gap in client.gaps if gap.recovered is False)
        row["anomalies"].update({f"{kind} (clients)": 1 for kind in client.anomalies})
        row["anomalies"]["no offset (events)"] += client.anomalies["no offset"]
        silent = 0
        for seq in lost:
            where = window_of(published[seq], windows, slack)
            row["lost_by_window"][where] += 1
            if client.recovering and told_to_reload(client, seq, published[seq], slack):
                row["told_to_reload"] += 1
            else:
                silent += 1
                row["silent_by_window"][where] += 1
        row["silent"] += silent
        if silent and {"offset went back", "no offset"} & set(client.anomalies):
            row["silent_detectable"] += silent  # the frames showed the stream broke
        if silent and len(row["worst"]) < 3:
            row["worst"].append({"client": client.name, "silent": silent, "seqs": lost[:10]})
    for row in classes.values():
        for key in ("lost_by_window", "silent_by_window", "anomalies"):
            row[key] = {k: v for k, v in row[key].items() if v}
    api_failures = Counter(window_of(event, windows, slack) for event in failed)
    losers = Counter(
        seq
        for client in clients
        for seq in set(published) - set(client.received)
        if published[seq].sent >= client.first_sub > 0
    )
    lost_events = [
        {
            "seq": seq,
            "node": published[seq].node,
            "window": window_of(published[seq], windows, slack),
            "clients": n,
        }
        for seq, n in sorted(losers.items())
    ]
    return {
        "lost_events": lost_events,
        "published": len(published),
        "api_failures": len(failed),
        "api_failures_by_window": dict(api_failures),
        "classes": classes,
    }


def table(result: dict[str, Any]) -> str:
    """The accounting as a text table."""
    head = (
        f"{'class':<11}{'clients':>8}{'expected':>10}{'delivered':>10}{'dup':>5}{'lost':>7}"
        f"  {'lost by window (kill/restart/redis/other)':<42}{'reload':>7}{'silent':>7}"
        f"{'recov t/f':>11}"
    )
    lines = [head, "-" * len(head)]
    for kind, row in result["classes"].items():
        by = row["lost_by_window"]
        spread = "/".join(str(by.get(w, 0)) for w in ("kill", "restart", "redis", "other"))
        recov = f"{row['recovered_true']}/{row['recovered_false']}" if kind == "recovering" else "-"
        reload = str(row["told_to_reload"]) if kind == "recovering" else "-"
        lines.append(
            f"{kind:<11}{row['clients']:>8}{row['expected']:>10}{row['delivered']:>10}"
            f"{row['duplicated']:>5}{row['lost']:>7}  {spread:<42}{reload:>7}"
            f"{row['silent']:>7}{recov:>11}"
        )
    lines.append(
        f"published (API 200): {result['published']}, API failures: {result['api_failures']} "
        f"{result['api_failures_by_window']}"
    )
    lines.append(
        "windows (s from start): "
        + ", ".join(f"{w['name']} {w['start']}-{w['end']}" for w in result["windows"])
    )
    by_window: dict[str, list[str]] = {}
    for event in result["lost_events"]:
        by_window.setdefault(event["window"], []).append(
            f"#{event['seq']}@node{event['node']}:{event['clients']}"
        )
    for name, events in by_window.items():
        lines.append(
            f"events lost in {name} (#seq@publishing node:clients that lost it): "
            + " ".join(events[:30])
            + (" ..." if len(events) > 30 else "")
        )
    for kind, row in result["classes"].items():
        keys = ("reconnects", "unconfirmed", "silent_detectable", "anomalies")
        extra = {k: row[k] for k in keys if row[k]}
        if row["silent_by_window"]:
            extra["silent_by_window"] = row["silent_by_window"]
        if extra:
            lines.append(f"{kind}: {extra}")
    counts = result.get("counts", {})
    if counts.get("exact"):
        lines.append(f"counts exact on every node {counts['after']} s after the load stopped")
    else:
        lines.append(f"counts NOT exact: {counts}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="overtone chaos benchmark")
    parser.add_argument("--quick", action="store_true", help="shorter steady phases")
    parser.add_argument("--clients", type=int, default=100, help="per class")
    parser.add_argument("--rate", type=float, default=40.0, help="events per second")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--appendonly", action="store_true", help="Redis with AOF")
    parser.add_argument("--json", type=Path, help="write the accounting to this file")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    n = args.clients
    plan = Plan(plain=n, recovering=n, presence=n, rate=args.rate)
    if args.quick:
        plan.warmup, plan.between, plan.after = 4.0, 4.0, 5.0
    with tempfile.TemporaryDirectory(prefix="overtone-chaos-") as tmp:
        cluster = LocalCluster(Path(tmp), args.nodes, args.appendonly, BENCH_APP)
        try:
            print(
                f"Redis on {cluster.redis.port} (appendonly {args.appendonly}), nodes on "
                f"{cluster.ports}",
                flush=True,
            )
            result = asyncio.run(run_chaos(plan, cluster, lambda s: print(s, flush=True)))
        finally:
            cluster.close()
    result["appendonly"] = args.appendonly
    print("\n" + table(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
