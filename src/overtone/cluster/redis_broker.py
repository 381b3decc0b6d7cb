"""The Redis broker: one pub/sub channel shared by every node (redis-py asyncio + hiredis).

The broker only carries envelopes (see :mod:`overtone.cluster.coordinator`); it keeps no
state in Redis, so Redis needs almost no memory and a restarted Redis loses nothing the
nodes cannot re-announce. While Redis is unreachable, envelopes are dropped (delivery is at
most once), the outage is logged once, and the broker reconnects with exponential backoff;
on reconnection ``on_connected`` fires so the node re-announces its whole state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from overtone.channels.history import StreamSnapshot
from overtone.cluster.broker import StreamAppend, StreamRef
from overtone.cluster.redis_streams import MARKER, RedisStreams

log = logging.getLogger("overtone.redis")

MAX_BACKOFF = 5.0


class RedisBroker:
    """Publishes and receives cluster envelopes on one Redis channel."""

    def __init__(
        self,
        url: str,
        channel: str,
        on_message: Callable[[bytes], None],
        on_connected: Callable[[], None],
        display_url: str | None = None,
    ) -> None:
        self.url = url
        self.channel = channel
        self.display_url = display_url or url
        self.on_message = on_message
        self.on_connected = on_connected
        self.connected = False
        self.dropped = 0
        self._outbox: deque[tuple[bytes, Sequence[StreamAppend], Sequence[StreamRef]]] = deque()
        self._ready = asyncio.Event()
        self._client: aioredis.Redis | None = None
        self._streams: RedisStreams | None = None
        self._markers: dict[bytes, asyncio.Future[None]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._sending = False

    async def start(self) -> None:
        """Start reading and writing; returns at once (connection happens in the background)."""
        self._reader = asyncio.create_task(self._read_forever(), name="redis-reader")
        self._writer = asyncio.create_task(self._write_forever(), name="redis-writer")

    def publish(
        self,
        envelope: bytes,
        appends: Sequence[StreamAppend] = (),
        resets: Sequence[StreamRef] = (),
    ) -> None:
        """Queue an envelope; dropped (and counted) while Redis is unreachable."""
        if not self.connected:
            self.dropped += 1
            return
        self._outbox.append((envelope, appends, resets))
        self._ready.set()

    async def stream(self, app_id: str, channel: str, ttl: float) -> StreamSnapshot | None:
        """One history stream from Redis, ``None`` while Redis is unreachable."""
        streams = self._streams
        if streams is None:
            return None
        marker = MARKER % secrets.token_hex(8).encode()
        arrived = asyncio.get_running_loop().create_future()
        self._markers[marker] = arrived
        try:
            snapshot = await streams.read(app_id, channel, ttl, time.time(), marker)
            await arrived  # every event numbered before the read has been delivered here
            return snapshot
        except (RedisError, OSError, ValueError) as exc:
            log.warning("could not read the history of %s from Redis: %s", channel, exc)
            return None
        finally:
            self._markers.pop(marker, None)

    async def _read_forever(self) -> None:
        delay = 0.1
        announced_down = False
        while not self._closing:
            client = aioredis.from_url(self.url, health_check_interval=10)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self._client = client
                self._streams = RedisStreams(client, self.channel)
                self.connected = True
                delay = 0.1
                if announced_down:
                    log.warning("Redis at %s is reachable again", self.display_url)
                    announced_down = False
                else:
                    log.info("joined the cluster on Redis %s", self.display_url)
                self.on_connected()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message["type"] == "message":
                        data = message["data"]
                        if data.startswith(b'{"b":'):  # a stream read's marker
                            waiting = self._markers.get(data)
                            if waiting is not None and not waiting.done():
                                waiting.set_result(None)
                        else:
                            self.on_message(data)
            except (RedisError, OSError) as exc:
                if not announced_down and not self._closing:
                    log.warning(
                        "Redis at %s is unreachable (%s): serving local clients only, "
                        "retrying in the background",
                        self.display_url,
                        exc,
                    )
                    announced_down = True
            finally:
                self.connected = False
                self._client = None
                self._streams = None
                self._outbox.clear()
                await _quietly(pubsub.aclose())  # type: ignore[no-untyped-call]
                await _quietly(client.aclose())
            if not self._closing:
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)

    async def _write_forever(self) -> None:
        while not self._closing:
            await self._ready.wait()
            self._ready.clear()
            client, streams = self._client, self._streams
            if client is None or streams is None:
                self._outbox.clear()
                continue
            batch = list(self._outbox)
            self._outbox.clear()
            self._sending = True
            body = join_envelopes([envelope for envelope, _, _ in batch])
            appends = [append for _, each, _ in batch for append in each]
            resets = [ref for _, _, each in batch for ref in each]
            try:
                # One Redis message for everything queued since the last send: every node
                # pays per Redis message read, so bursts (e.g. thousands of connections)
                # cost one message per send, not one per event-loop iteration.
                if appends or resets:
                    await streams.publish(body, appends, resets, time.time())
                else:
                    await client.publish(self.channel, body)
            except (RedisError, OSError) as exc:
                self.dropped += len(batch)
                if appends:
                    log.warning("dropped %d event(s) Redis could not number: %s", len(appends), exc)
            finally:
                self._sending = False

    async def peers(self) -> int:
        """Other subscribers of the channel (``PUBSUB NUMSUB``), 0 if Redis is away."""
        client = self._client
        if client is None:
            return 0
        try:
            counts = await client.pubsub_numsub(self.channel)
        except (RedisError, OSError):
            return 0
        return max(int(counts[0][1]) - 1, 0) if counts else 0

    async def close(self, timeout: float = 2.0) -> None:
        """Send what is queued (bounded by ``timeout``), then disconnect."""
        deadline = asyncio.get_running_loop().time() + timeout
        while (
            (self._outbox or self._sending)
            and self.connected
            and asyncio.get_running_loop().time() < deadline
        ):
            await asyncio.sleep(0.01)
        self._closing = True
        for task in (self._reader, self._writer):
            if task is not None:
                task.cancel()
        for task in (self._reader, self._writer):
            if task is not None:
                await _quietly(task)


def join_envelopes(envelopes: list[bytes]) -> bytes:
    """One payload for several JSON envelopes: the envelope itself, or a JSON array of them."""
    if len(envelopes) == 1:
        return envelopes[0]
    return b"[" + b",".join(envelopes) + b"]"


async def _quietly(awaitable: object) -> None:
    with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
        await awaitable  # type: ignore[misc]
