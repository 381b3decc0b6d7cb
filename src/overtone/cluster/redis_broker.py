"""The Redis broker: one pub/sub channel shared by every node (redis-py asyncio + hiredis).

The broker carries envelopes (see :mod:`overtone.cluster.coordinator`) and the history
streams (:mod:`overtone.cluster.redis_streams`). Everything goes through one primary, found
by :func:`overtone.cluster.redis_connect.connect` (one Redis, Sentinel or Redis Cluster):
its scripts, its publishes and the broker's subscription, so every node sees one order.

While Redis is unreachable, envelopes are dropped (delivery is at most once), the outage is
logged once, and the broker reconnects with exponential backoff, discovering the primary
again each time; on reconnection ``on_connected`` fires so the node re-announces its whole
state. A failover is one such outage: the broker counts the link as lost when its
subscription breaks or is cancelled by the server, when a command meets a server that is no
longer the primary (``READONLY``, ``MOVED``, ...), or when not even the node's own heartbeat
has come back for ``node_timeout`` seconds (a connection that hangs instead of failing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from redis.asyncio.client import PubSub
from redis.exceptions import (
    ClusterDownError,
    MovedError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from overtone.channels.history import StreamSnapshot
from overtone.cluster import redis_connect
from overtone.cluster.broker import StreamAppend, StreamRef
from overtone.cluster.redis_connect import Primary, close_pubsub
from overtone.cluster.redis_streams import MARKER, RedisStreams
from overtone.config import Scaling

log = logging.getLogger("overtone.redis")

WATCHDOG = 1.0
"""Seconds between checks that the subscription's server is still the live primary."""
WRONG_SERVER = ("READONLY", "MOVED", "ASK", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "LOADING")
"""Error replies saying this server is no longer the one to talk to."""


class RedisBroker:
    """Publishes and receives cluster envelopes on one Redis channel.

    ``scaling`` says how to reach Redis and names the channel
    (:attr:`~overtone.config.Scaling.broker_channel`); its ``node_timeout`` bounds how long
    the subscription may stay silent before it counts as lost (the coordinator's own
    heartbeat comes back every ``heartbeat_interval``).
    """

    def __init__(
        self,
        scaling: Scaling,
        on_message: Callable[[bytes], None],
        on_connected: Callable[[], None],
    ) -> None:
        self.scaling = scaling
        self.channel = scaling.broker_channel
        self.display_url = redis_connect.describe(scaling)
        self.on_message = on_message
        self.on_connected = on_connected
        self.connected = False
        self.dropped = 0
        self.primary_address: str | None = None
        """Where the broker is connected now (``host:port``), ``None`` while away."""
        self._outbox: deque[tuple[bytes, Sequence[StreamAppend], Sequence[StreamRef]]] = deque()
        self._ready = asyncio.Event()
        self._primary: Primary | None = None
        self._stale = False
        self._heard = 0.0
        """Loop time of the last message read (the watchdog's measure of silence)."""
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
            self._check_link(exc)
            log.warning("could not read the history of %s from Redis: %s", channel, exc)
            return None
        finally:
            self._markers.pop(marker, None)

    async def _read_forever(self) -> None:
        delay = 0.1
        announced_down = False
        backoff = redis_connect.max_backoff(self.scaling)
        while not self._closing:
            primary: Primary | None = None
            pubsub = None
            try:
                primary = await redis_connect.connect(self.scaling)
                pubsub = primary.client.pubsub()
                await primary.subscribe(pubsub, self.channel)
                self._primary = primary
                self._streams = RedisStreams(
                    primary.client, self.channel, primary.publish_command, primary.generation
                )
                self._stale = False
                self.primary_address = primary.address
                self.connected = True
                delay = 0.1
                if announced_down:
                    log.warning(
                        "Redis is reachable again: primary %s (%s)",
                        primary.address,
                        self.display_url,
                    )
                    announced_down = False
                else:
                    log.info(
                        "joined the cluster on Redis %s (primary %s%s)",
                        self.display_url,
                        primary.address,
                        ", sharded pub/sub" if primary.sharded else "",
                    )
                self.on_connected()
                await self._receive(pubsub)
            except (RedisError, OSError) as exc:
                if not announced_down and not self._closing:
                    log.warning(
                        "Redis at %s is unreachable (%s): serving local clients only, "
                        "retrying in the background",
                        self.display_url,
                        exc,
                    )
                    announced_down = True
            except Exception:  # never let the link die for good: log it and reconnect
                log.exception("the Redis link failed unexpectedly; reconnecting")
                announced_down = True
            finally:
                self.connected = False
                self.primary_address = None
                self._primary = None
                self._streams = None
                self._outbox.clear()
                if pubsub is not None:
                    await _quietly(close_pubsub(pubsub))
                if primary is not None:
                    await primary.aclose()
            if not self._closing:
                await asyncio.sleep(delay)
                delay = min(delay * 2, backoff)

    async def _receive(self, pubsub: PubSub) -> None:
        """Hand messages to ``on_message`` until the link is lost (then raise).

        Messages are read without a timeout per call: redis-py's timeout cost a third of the
        CPU of reading a message (``python -m benchmarks.redis_pubsub``: 26.5 against 17.5 us).
        A watchdog checks once a second instead that the server is still the primary and
        that something (at least our own heartbeat) arrived within the node timeout.
        """
        loop = asyncio.get_running_loop()
        self._heard = loop.time()
        silence = self.scaling.node_timeout
        reading = loop.create_task(self._read_messages(pubsub))
        try:
            while True:
                await asyncio.wait({reading}, timeout=WATCHDOG)
                if reading.done():
                    reading.result()  # what ended it, raised
                    raise RedisConnectionError("the subscription ended")
                if self._stale:
                    raise RedisConnectionError("the server is no longer the primary")
                if loop.time() - self._heard > silence:
                    raise RedisConnectionError(f"nothing received for {silence:g} s")
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                await reading

    async def _read_messages(self, pubsub: PubSub) -> None:
        loop = asyncio.get_running_loop()
        markers = self._markers
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is None:
                continue
            kind = message["type"]
            if kind in ("message", "smessage"):
                self._heard = loop.time()
                data = message["data"]
                if data.startswith(b'{"b":'):  # a stream read's marker
                    waiting = markers.get(data)
                    if waiting is not None and not waiting.done():
                        waiting.set_result(None)
                else:
                    self.on_message(data)
            elif kind in ("unsubscribe", "sunsubscribe"):  # the slot moved away
                raise RedisConnectionError("the server cancelled the subscription")

    async def _write_forever(self) -> None:
        while not self._closing:
            await self._ready.wait()
            self._ready.clear()
            primary, streams = self._primary, self._streams
            if primary is None or streams is None:
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
                    await primary.publish(self.channel, body)
            except (RedisError, OSError) as exc:
                self._check_link(exc)
                self.dropped += len(batch)
                if appends:
                    log.warning("dropped %d event(s) Redis could not number: %s", len(appends), exc)
            finally:
                self._sending = False

    def _check_link(self, exc: BaseException) -> None:
        """After a failed command: if the server is gone or no longer the primary, have the
        reader reconnect (it re-discovers the primary and the node re-announces itself)."""
        lost = isinstance(
            exc,
            RedisConnectionError
            | RedisTimeoutError
            | OSError
            | ReadOnlyError
            | MovedError
            | ClusterDownError
            | TryAgainError,
        )
        if lost or (isinstance(exc, ResponseError) and str(exc).startswith(WRONG_SERVER)):
            self._stale = True

    async def peers(self) -> int:
        """Other subscribers of the channel on the primary, 0 if Redis is away."""
        primary = self._primary
        if primary is None:
            return 0
        try:
            count = await primary.listeners(self.channel)
        except (RedisError, OSError):
            return 0
        return max(count - 1, 0)

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


async def _quietly(awaitable: Awaitable[object]) -> None:
    with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
        await awaitable
