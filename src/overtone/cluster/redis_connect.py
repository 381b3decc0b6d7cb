"""Reaching the Redis primary of the cluster broker, whatever the Redis topology.

:func:`connect` discovers the primary afresh on every call and returns a :class:`Primary`:
a plain client to the Redis primary that owns the broker channel, and what that server can
do. Three topologies give the same result:

- one server (``REDIS_URL``, or a managed service's primary endpoint, which follows a
  failover by DNS): that server;
- Sentinel (``OVERTONE_REDIS_SENTINELS``): the sentinels name the current primary of
  ``OVERTONE_REDIS_SENTINEL_MASTER``;
- Redis Cluster (``OVERTONE_REDIS_CLUSTER_NODES``): the cluster names the primary owning
  the slot of the broker channel, whose hash tag every history key shares
  (:attr:`overtone.config.Scaling.broker_channel`). There the broker uses sharded pub/sub
  (``SPUBLISH``/``SSUBSCRIBE``, Redis 7+ and Valkey) when the server has it, so its
  messages stay within that slot's shard instead of crossing every node of the cluster.

Contract: a server that answers but is not a primary (a replica, a demoted primary, a
reader endpoint, a sentinel that has not switched yet) is refused with
:class:`~redis.exceptions.ConnectionError`, like an unreachable one, so the caller simply
retries. Clients built here never retry a command or reconnect by themselves: a lost
connection surfaces at once, and nothing is sent twice (delivery stays at most once).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError, ResponseError

from overtone.config import Scaling

CONNECT_TIMEOUT = 3.0
"""Seconds to open a connection to Redis (or to a sentinel)."""
COMMAND_TIMEOUT = 5.0
"""Seconds a command may take before the connection counts as lost."""
FAILOVER_BACKOFF = 1.0
"""Longest wait between reconnections with Sentinel or Redis Cluster: a failover ends within
seconds, and the nodes should find the new primary within a second of it."""
SINGLE_BACKOFF = 5.0
"""Longest wait between reconnections to a single Redis (a restart takes longer)."""


async def execute(client: aioredis.Redis, *args: object) -> Any:
    """Run one raw command on ``client`` and return its reply.

    redis-py annotates ``execute_command`` in some releases and not in others; called through
    a ``Callable`` it type-checks alike on every release the dependency range allows.
    """
    command: Callable[..., Awaitable[Any]] = client.execute_command
    return await command(*args)


async def close_pubsub(pubsub: PubSub) -> None:
    """Close ``pubsub`` and its connection (``aclose``, annotated in some releases only)."""
    close: Callable[[], Awaitable[object]] = pubsub.aclose
    await close()


def _never_retry() -> Retry:
    return Retry(NoBackoff(), 0)


@dataclass
class Primary:
    """A connected client to the primary holding the broker channel."""

    client: aioredis.Redis
    address: str
    """``host:port`` of the primary (or the URL for a single Redis), for logs."""
    sharded: bool
    """``SPUBLISH``/``SSUBSCRIBE`` instead of ``PUBLISH``/``SUBSCRIBE`` (Redis Cluster)."""
    generation: str
    """The primary's replication id (``master_replid``), ``""`` when INFO is refused. It
    changes when a replica is promoted and when a server restarts: the history scripts then
    restart each stream in a new epoch, because the new primary may lack the last events
    the old one had not yet replicated."""

    @property
    def publish_command(self) -> str:
        """``SPUBLISH`` or ``PUBLISH``, for the Lua scripts."""
        return "SPUBLISH" if self.sharded else "PUBLISH"

    async def publish(self, channel: str, body: bytes) -> int:
        """Publish ``body``; how many subscribers received it."""
        return int(await execute(self.client, self.publish_command, channel, body))

    async def subscribe(self, pubsub: PubSub, channel: str) -> None:
        """Subscribe ``pubsub`` (made from :attr:`client`) to ``channel``."""
        if self.sharded:
            await pubsub.ssubscribe(channel)
        else:
            await pubsub.subscribe(channel)

    async def listeners(self, channel: str) -> int:
        """Subscribers of ``channel`` on this primary (every node subscribes here)."""
        command = "SHARDNUMSUB" if self.sharded else "NUMSUB"
        reply = await execute(self.client, "PUBSUB", command, channel)
        if isinstance(reply, dict):
            return int(next(iter(reply.values()), 0))
        if isinstance(reply, list) and reply:
            last = reply[-1]
            return int(last[1] if isinstance(last, list | tuple) else last)
        return 0

    async def aclose(self) -> None:
        """Close the client (never raises)."""
        with contextlib.suppress(RedisError, OSError):
            await self.client.aclose()


def describe(scaling: Scaling) -> str:
    """How the broker finds Redis, without passwords, for logs."""
    if scaling.sentinels:
        return (
            f"Sentinel master {scaling.sentinel_master!r} "
            f"(sentinels {_addresses(scaling.sentinels)})"
        )
    if scaling.cluster_nodes:
        return f"Redis Cluster (nodes {_addresses(scaling.cluster_nodes)})"
    return scaling.redacted_url()


def max_backoff(scaling: Scaling) -> float:
    """The longest wait between reconnections for this topology."""
    return FAILOVER_BACKOFF if scaling.sentinels or scaling.cluster_nodes else SINGLE_BACKOFF


def connection_options(scaling: Scaling) -> dict[str, Any]:
    """Credentials, TLS and database of ``REDIS_URL`` (host and port left out)."""
    parts = urlsplit(scaling.redis_url)
    options: dict[str, Any] = {
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password is not None else None,
    }
    if parts.scheme == "rediss":
        options["ssl"] = True
        if scaling.tls_ca:
            options["ssl_ca_certs"] = scaling.tls_ca
    return options


def _client_options() -> dict[str, Any]:
    return {
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": COMMAND_TIMEOUT,
        "socket_keepalive": True,
        "health_check_interval": 10,
        "retry": _never_retry(),
    }


async def connect(scaling: Scaling) -> Primary:
    """Find the current primary and connect to it (see the module's contract).

    Raises :class:`~redis.exceptions.RedisError` or :class:`OSError` when no primary can be
    reached now.
    """
    options = connection_options(scaling)
    if scaling.sentinels or scaling.cluster_nodes:
        find = _sentinel_primary if scaling.sentinels else _cluster_primary
        host, port = await find(scaling, options)
        client = aioredis.Redis(
            host=host, port=port, db=_db(scaling), **options, **_client_options()
        )
        address = f"{host}:{port}"
    else:
        extra = {"ssl_ca_certs": scaling.tls_ca} if "ssl" in options and scaling.tls_ca else {}
        client = aioredis.from_url(scaling.redis_url, **extra, **_client_options())
        address = scaling.redacted_url()
    try:
        generation = await _generation(client, address)
        sharded = bool(scaling.cluster_nodes) and await _has_sharded_pubsub(client)
    except BaseException:
        with contextlib.suppress(RedisError, OSError):
            await client.aclose()
        raise
    return Primary(client, address, sharded, generation)


async def publish_once(scaling: Scaling, body: bytes) -> int:
    """Publish one envelope on the broker channel; how many nodes received it."""
    primary = await connect(scaling)
    try:
        return await primary.publish(scaling.broker_channel, body)
    finally:
        await primary.aclose()


async def _sentinel_primary(scaling: Scaling, options: dict[str, Any]) -> tuple[str, int]:
    sentinel_options: dict[str, Any] = {
        "username": scaling.sentinel_username,
        "password": scaling.sentinel_password,
        "socket_connect_timeout": 1.0,
        "socket_timeout": 1.0,
        "retry": _never_retry(),
    }
    if options.get("ssl"):
        sentinel_options["ssl"] = True
        if scaling.tls_ca:
            sentinel_options["ssl_ca_certs"] = scaling.tls_ca
    sentinels = list(scaling.sentinels)
    # Sentinel's constructor is annotated in some redis-py releases only.
    make_sentinel: Callable[..., Sentinel] = Sentinel
    sentinel = make_sentinel(sentinels, sentinel_kwargs=sentinel_options)
    try:
        host, port = await sentinel.discover_master(scaling.sentinel_master)
    finally:
        for each in sentinel.sentinels:
            with contextlib.suppress(RedisError, OSError):
                await each.aclose()
    return str(host), int(port)


async def _cluster_primary(scaling: Scaling, options: dict[str, Any]) -> tuple[str, int]:
    cluster = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in scaling.cluster_nodes],
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=COMMAND_TIMEOUT,
        **options,
    )
    try:
        await cluster.initialize()
        node = cluster.get_node_from_key(scaling.broker_channel)
    except RedisClusterException as exc:  # not a RedisError: no seed node answered
        raise RedisConnectionError(str(exc)) from exc
    finally:
        with contextlib.suppress(RedisError, OSError):
            await cluster.aclose()
    if node is None:
        raise RedisConnectionError("no Redis Cluster node owns the broker channel's slot")
    return str(node.host), int(node.port)


async def _generation(client: aioredis.Redis, address: str) -> str:
    """The primary's replication id; refuses a server that is not a primary."""
    try:
        info = await client.info("replication")
    except ResponseError:  # INFO not allowed for this user: no role check, no generation
        return ""
    role = info.get("role")
    if role is not None and role != "master":
        raise RedisConnectionError(f"Redis at {address} is a replica ({role}), not the primary")
    return str(info.get("master_replid", ""))


async def _has_sharded_pubsub(client: aioredis.Redis) -> bool:
    try:
        reply = await execute(client, "COMMAND", "INFO", "SPUBLISH")
    except ResponseError:
        return False
    if isinstance(reply, dict):
        return any(value for value in reply.values())
    return bool(reply) and any(item for item in reply)


def _db(scaling: Scaling) -> int:
    path = urlsplit(scaling.redis_url).path.strip("/")
    return int(path) if path.isdigit() else 0


def _addresses(items: tuple[tuple[str, int], ...]) -> str:
    return ",".join(f"{host}:{port}" for host, port in items)
