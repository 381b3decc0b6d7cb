"""What reading one cluster message costs a node: redis-py's pub/sub against hiredis alone.

A fresh ``redis-server`` (free 127.0.0.1 port, no persistence, stopped by its PID) and
``redis-benchmark`` publishing ``--messages`` copies of a typical batch envelope, one at a
time, to a channel this process reads three ways under uvloop: redis-py's
``PubSub.get_message`` with a timeout (how :mod:`overtone.cluster.redis_broker` reads), the
same without a timeout, and a bare ``asyncio.Protocol`` feeding ``hiredis.Reader`` (the
floor: the parser redis-py itself uses, without its layers). Prints this process's CPU
microseconds per message received.

    python -m benchmarks.redis_pubsub [--messages 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import hiredis
import redis.asyncio as aioredis

from benchmarks.cluster import Redis
from overtone.cluster.redis_connect import close_pubsub

ENVELOPE = (
    b'{"n":"web-1:4242:a1b2c3","m":[["100000",{"t":"conn","d":30}],'
    b'["100000",{"t":"subs","c":{"news":30}}]]}'
)


def publisher(port: int, messages: int) -> subprocess.Popen[bytes]:
    cmd = ["redis-benchmark", "-p", str(port), "-n", str(messages), "-c", "1", "-q"]
    cmd += ["publish", "bench", ENVELOPE.decode()]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def redis_py(port: int, messages: int, timeout: float | None) -> float:
    client = aioredis.Redis(port=port)
    pubsub = client.pubsub()
    await pubsub.subscribe("bench")
    await pubsub.get_message(timeout=1.0)  # the subscribe confirmation
    sender = publisher(port, messages)
    received, started = 0, time.process_time()
    while received < messages:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
        if message is not None and message["type"] == "message":
            received += 1
    spent = time.process_time() - started
    sender.wait(30)
    await close_pubsub(pubsub)
    await client.aclose()
    return spent / messages * 1e6


class Reader(asyncio.Protocol):
    def __init__(self, messages: int, done: asyncio.Future[None]) -> None:
        self.reader = hiredis.Reader()
        self.left = messages
        self.done = done

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            if isinstance(reply, list) and reply[0] == b"message":
                self.left -= 1
                if self.left == 0:
                    self.done.set_result(None)


async def bare(port: int, messages: int) -> float:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    transport, _ = await loop.create_connection(lambda: Reader(messages, done), "127.0.0.1", port)
    transport.write(b"*2\r\n$9\r\nSUBSCRIBE\r\n$5\r\nbench\r\n")
    await asyncio.sleep(0.2)
    sender = publisher(port, messages)
    started = time.process_time()
    await asyncio.wait_for(done, 120)
    spent = time.process_time() - started
    sender.wait(30)
    transport.close()
    return spent / messages * 1e6


async def run(port: int, messages: int) -> list[tuple[str, float]]:
    return [
        ("redis-py get_message(timeout=1.0)", await redis_py(port, messages, 1.0)),
        ("redis-py get_message(timeout=None)", await redis_py(port, messages, None)),
        ("asyncio.Protocol + hiredis.Reader", await bare(port, messages)),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="cluster message read cost")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--redis-server", default="redis-server")
    args = parser.parse_args(argv)
    import uvloop  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="overtone-pubsub-") as tmp:
        redis = Redis(args.redis_server, Path(tmp), pin=False)
        try:
            problem = redis.wait_ready()
            if problem is not None:
                print(problem)
                return 1
            figures = uvloop.run(run(redis.port, args.messages))
        finally:
            redis.stop()
    print(f"CPU us per message received ({args.messages} messages of {len(ENVELOPE)} bytes):")
    for name, us in figures:
        print(f"  {name:<38} {us:6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
