"""History streams in Redis: numbering, storing and reading them with two Lua scripts.

Each stream is two keys beside the broker channel ``C``:

- ``C:h:{app}:{channel}``: a hash ``{e: epoch, o: offset, g: generation}`` (kept
  :data:`HEADER_KEEP_MS` after the last use; a stream without it starts again in a new
  epoch);
- ``C:l:{app}:{channel}``: a list of ``"{stored_at_ms} {excluded socket id or -} {payload
  with offset}"``, trimmed
  to the app's ``max_events`` and expiring ``ttl`` after the last event.

The publish script numbers every append of a batch, stores it and publishes
``{"q": [[epoch, offset], ...], "e": batch}`` in one atomic step, so every node sees
offsets in the channel's own order. A Redis that lost its data (restart without
persistence) has no headers: every stream then starts a new epoch, as the contract asks.

Replication is asynchronous, so a promoted replica may lack the last events its old primary
numbered: numbering on from its offset would give a second event an offset clients already
hold. Each header therefore records the *generation* it was written under (the primary's
replication id, which a promotion or restart changes); a header of another generation is
treated as missing, so after a failover every stream starts a new epoch and recovering
clients reload instead of trusting a history with a hole. A header without a generation
(written before generations existed) adopts the current one.

On a Redis Cluster, ``C`` carries a hash tag, so the channel and every key live in one slot
and each script runs on one shard; the scripts then publish with ``SPUBLISH``.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from overtone.channels.history import StreamSnapshot
from overtone.cluster.broker import StreamAppend, StreamRef

HEADER_KEEP_MS = 86_400_000
"""How long a stream's header outlives its last use (a day)."""

GENERATION = """
local function current(header, list, generation)
  local fields = redis.call('HMGET', header, 'e', 'g')
  local epoch, seen = fields[1], fields[2]
  if epoch and generation ~= '' then
    if not seen then
      redis.call('HSET', header, 'g', generation)
    elseif seen ~= generation then
      redis.call('DEL', header, list)
      epoch = false
    end
  end
  return epoch
end
"""
"""``current(header, list, generation)``: the stream's epoch, or ``false`` when it has no
header or one written under another generation (then the stream is deleted)."""

PUBLISH = (
    GENERATION
    + """
local channel, body, seed, now, keep = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local appends, resets = tonumber(ARGV[6]), tonumber(ARGV[7])
local publish, generation = ARGV[8], ARGV[9]
local k = 1
for i = 1, resets do
  redis.call('DEL', KEYS[k], KEYS[k + 1])
  k = k + 2
end
local q = {}
local a = 10
for i = 1, appends do
  local header, list = KEYS[k], KEYS[k + 1]
  local payload, max_events, ttl = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2]
  local exclude = ARGV[a + 3]
  k = k + 2
  a = a + 4
  local epoch = current(header, list, generation)
  if not epoch then
    epoch = seed .. '.' .. i
    redis.call('HSET', header, 'e', epoch, 'o', 0, 'g', generation)
  end
  local offset = redis.call('HINCRBY', header, 'o', 1)
  redis.call('PEXPIRE', header, keep)
  local stored = string.sub(payload, 1, -2) .. ',"offset":' .. offset .. '}'
  redis.call('RPUSH', list, now .. ' ' .. exclude .. ' ' .. stored)
  redis.call('LTRIM', list, -max_events, -1)
  redis.call('PEXPIRE', list, ttl)
  q[i] = '["' .. epoch .. '",' .. offset .. ']'
end
redis.call(publish, channel, '{"q":[' .. table.concat(q, ',') .. '],"e":' .. body .. '}')
return appends
"""
)

READ = (
    GENERATION
    + """
local epoch = current(KEYS[1], KEYS[2], ARGV[6])
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'e', epoch, 'o', 0, 'g', ARGV[6])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local snapshot = {epoch, redis.call('HGET', KEYS[1], 'o'), redis.call('LRANGE', KEYS[2], 0, -1)}
redis.call(ARGV[5], ARGV[3], ARGV[4])
return snapshot
"""
)
"""Reads a stream and, in the same step, publishes a marker on the broker channel: when the
marker comes back, every event numbered before the read has reached this node too."""

MARKER = b'{"b":"%s"}'
"""A read's marker (``{"b": token}``); brokers consume their own and ignore the others'."""


def _keys(channel: str, app_id: str, stream: str) -> list[str]:
    return [f"{channel}:h:{app_id}:{stream}", f"{channel}:l:{app_id}:{stream}"]


class RedisStreams:
    """The two scripts, registered on one client (redis-py loads them on first use).

    ``publish_command`` is ``PUBLISH`` or ``SPUBLISH`` (sharded pub/sub on a Redis
    Cluster); ``generation`` identifies the primary's data (see the module docstring), ``""``
    when unknown (no check).
    """

    def __init__(
        self,
        client: aioredis.Redis,
        channel: str,
        publish_command: str = "PUBLISH",
        generation: str = "",
    ) -> None:
        self.channel = channel
        self.publish_command = publish_command
        self.generation = generation
        self._publish: AsyncScript = client.register_script(PUBLISH)
        self._read: AsyncScript = client.register_script(READ)

    async def publish(
        self,
        body: bytes,
        appends: Sequence[StreamAppend],
        resets: Sequence[StreamRef],
        now: float,
    ) -> None:
        """Forget ``resets``; number, store and publish ``appends`` with ``body``."""
        keys: list[str] = []
        args: list[Any] = [
            self.channel,
            body,
            secrets.token_hex(6),
            int(now * 1000),
            HEADER_KEEP_MS,
            len(appends),
            len(resets),
            self.publish_command,
            self.generation,
        ]
        for app_id, stream in resets:
            keys += _keys(self.channel, app_id, stream)
        for append in appends:
            keys += _keys(self.channel, append.app_id, append.channel)
            args += [
                append.payload,
                append.max_events,
                max(int(append.ttl * 1000), 1),
                append.exclude or "-",
            ]
        await self._publish(keys=keys, args=args)

    async def read(
        self, app_id: str, stream: str, ttl: float, now: float, marker: bytes
    ) -> StreamSnapshot:
        """One stream: its header (created if missing) and events younger than ``ttl``;
        ``marker`` is published on the broker channel right after the read."""
        keys = _keys(self.channel, app_id, stream)
        epoch, offset, items = await self._read(
            keys=keys,
            args=[
                secrets.token_hex(6) + ".0",
                HEADER_KEEP_MS,
                self.channel,
                marker,
                self.publish_command,
                self.generation,
            ],
        )
        last = int(offset)
        entries: list[tuple[int, float, bytes]] = []
        excluded: dict[int, str] = {}
        first = last - len(items) + 1
        horizon = now - ttl
        for offset, item in enumerate(items, first):
            stamp, exclude, payload = bytes(item).split(b" ", 2)
            stored_at = int(stamp) / 1000
            if entries or stored_at > horizon:  # drop the too-old prefix only
                entries.append((offset, stored_at, payload))
                if exclude != b"-":
                    excluded[offset] = exclude.decode()
        epoch_text = epoch.decode() if isinstance(epoch, bytes) else str(epoch)
        return StreamSnapshot(epoch_text, last, entries, excluded)
