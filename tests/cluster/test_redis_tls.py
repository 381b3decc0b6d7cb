"""The broker over TLS with AUTH (as on ElastiCache with in-transit encryption and a token):
a real ``redis-server`` with a TLS port only, a password, and a private CA."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from overtone.cluster.redis_broker import RedisBroker
from overtone.config import Scaling
from support.servers import free_port, scaled
from support.tls import self_signed

PASSWORD = "a-long-auth-token"


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (make test installs it)")
    cert, key = self_signed(tmp_path)
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port", "0",
            "--tls-port", str(port),
            "--bind", "127.0.0.1",
            "--tls-cert-file", str(cert),
            "--tls-key-file", str(key),
            "--tls-ca-cert-file", str(cert),
            "--tls-auth-clients", "no",
            "--requirepass", PASSWORD,
            "--save", "",
            "--dir", str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield port, cert
    finally:
        process.terminate()
        process.wait(scaled(10))


async def wait_for(condition: object, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + scaled(timeout)
    while not condition():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_broker_over_tls_with_auth(tls_redis: tuple[int, Path]) -> None:
    port, ca = tls_redis
    url = f"rediss://:{PASSWORD}@127.0.0.1:{port}/0"
    probe = aioredis.from_url(url, ssl_ca_certs=str(ca))
    for _ in range(100):  # until the server listens
        try:
            await probe.ping()
            break
        except (RedisError, OSError):
            await asyncio.sleep(0.05)
    await probe.aclose()
    received: list[bytes] = []
    connects: list[int] = []
    broker = RedisBroker(
        Scaling(redis_url=url, channel="tls", tls_ca=str(ca)),
        received.append,
        lambda: connects.append(1),
    )
    await broker.start()
    try:
        await wait_for(lambda: broker.connected)
        envelope = json.dumps({"n": "a", "m": "over tls"}).encode()
        broker.publish(envelope)
        await wait_for(lambda: envelope in received)
    finally:
        await broker.close(timeout=0.5)
    wrong = RedisBroker(
        Scaling(redis_url=f"rediss://:wrong@127.0.0.1:{port}/0", channel="tls", tls_ca=str(ca)),
        received.append,
        lambda: connects.append(2),
    )
    await wrong.start()
    await asyncio.sleep(0.5)
    assert not wrong.connected and 2 not in connects  # a bad password never joins
    await wrong.close(timeout=0.5)
