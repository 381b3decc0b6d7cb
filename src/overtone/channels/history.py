"""Per-channel event history: stream positions and recovery (protocol.md §8). Sans-I/O.

Each channel with history is a *stream*: an ``epoch`` (an opaque string) and an ``offset``
that grows by one per published event. Within one epoch an offset is never reused and
never skipped. A stream keeps its most recent events, bounded three ways, oldest first:

- per app: at most ``max_events`` per channel, none older than ``ttl`` seconds;
- per node: at most ``HistoryBudget.max_bytes`` over every app's streams.

A stream's *header* (epoch and offset) outlives its events: it stays while the channel is
occupied on this node and for :data:`HEADER_KEEP` seconds after its last use, so a client
that saw everything can still recover after a quiet hour. A dropped header means the next
use starts a new epoch, which recovering clients see as ``recovered: false``: history can
be forgotten, but never silently.

Events are stored as their encoded JSON payload *with* the offset field, exactly the bytes
subscribers receive, so a replay is the same frame as the live delivery.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import orjson

HEADER_KEEP = 3_600.0
"""Seconds a stream header is kept after its last use while nobody here is subscribed."""

ENTRY_OVERHEAD = 260
"""Bytes charged per stored event on top of its payload: the entry tuple, its offset and
time objects, the bytes object header, deque slots and the eviction-order record. Measured
(``benchmarks.history``): about 450 bytes of process memory per held 200-byte event."""

HEADER_COST = 1_000
"""Bytes charged per stream header (the object, its empty deque, name and epoch: ~0.9 KB)."""


@dataclass(frozen=True, slots=True)
class HistoryLimits:
    """One app's history bounds (``enabled=False``: no stream, no offsets, no positions)."""

    enabled: bool = True
    max_events: int = 100
    ttl: float = 300.0


@dataclass(frozen=True, slots=True)
class Position:
    """Where a stream stands: the offset of its last event in ``epoch``."""

    epoch: str
    offset: int

    def to_wire(self) -> dict[str, object]:
        """``{"epoch": E, "offset": N}`` as sent to clients."""
        return {"epoch": self.epoch, "offset": self.offset}


def parse_position(value: object) -> Position | None:
    """A client's ``{"epoch": E, "offset": N}`` (``None`` unless well formed, ``N >= 0``)."""
    if not isinstance(value, dict):
        return None
    epoch, offset = value.get("epoch"), value.get("offset")
    if not isinstance(epoch, str) or isinstance(offset, bool) or not isinstance(offset, int):
        return None
    return Position(epoch, offset) if offset >= 0 else None


def with_offset(payload: bytes, offset: int) -> bytes:
    """``payload`` (a JSON object's bytes) with ``"offset": offset`` appended as a field.

    Splicing avoids decoding and re-encoding the event: it is done once per event.
    """
    return b'%s,"offset":%d}' % (payload[:-1], offset)


@dataclass(frozen=True, slots=True)
class StreamSnapshot:
    """A stream as a shared store holds it: position and ``(offset, stored_at, payload)``
    of its held events, oldest first and contiguous up to ``offset``."""

    epoch: str
    offset: int
    entries: list[tuple[int, float, bytes]]
    excluded: dict[int, str] = field(default_factory=dict)
    """Offset -> the socket id the event was not sent to (a trigger's ``socket_id``)."""


class Stream:
    """One channel's epoch, offset and recent events ``(offset, stored_at, payload)``."""

    __slots__ = ("entries", "epoch", "excluded", "name", "offset", "used")

    def __init__(self, name: str, epoch: str, offset: int = 0) -> None:
        self.name = name
        self.epoch = epoch
        self.offset = offset
        self.entries: deque[tuple[int, float, bytes]] = deque()
        self.excluded: dict[int, str] | None = None
        """Offset -> socket id the event was not sent to (only events that excluded one)."""
        self.used = 0.0
        """When the stream was last published to, subscribed to or asked for its position."""

    @property
    def first(self) -> int:
        """The offset of the oldest event held (``offset + 1`` when none is held)."""
        return self.entries[0][0] if self.entries else self.offset + 1

    def position(self) -> Position:
        """The stream's current position."""
        return Position(self.epoch, self.offset)


class HistoryBudget:
    """The node-wide memory cap over every app's streams; the oldest events go first.

    Every stored event is charged here in publish order; past ``max_bytes`` the oldest
    still-held events are evicted from whichever stream holds them. Stream headers count
    too (:data:`HEADER_COST` each): past the cap, :meth:`History.sweep` drops the least
    recently used headers of channels nobody here subscribes to.
    """

    __slots__ = ("_order", "events", "headers", "max_bytes", "used")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used = 0
        """Bytes of stored events (payloads and :data:`ENTRY_OVERHEAD` each)."""
        self.events = 0
        self.headers = 0
        self._order: deque[tuple[Stream, int]] = deque()

    @property
    def over(self) -> bool:
        """Whether events and headers together exceed the cap."""
        return self.used + self.headers * HEADER_COST > self.max_bytes

    def charge(self, stream: Stream, offset: int, size: int) -> None:
        """Account one stored event, then evict the oldest events while over the cap."""
        self.used += size
        self.events += 1
        self._order.append((stream, offset))
        while self.used > self.max_bytes and self._order:
            oldest, upto = self._order.popleft()
            self._drop_through(oldest, upto)
        if len(self._order) > 2 * self.events + 256:
            self._compact()

    def _compact(self) -> None:
        """Keep only the order records of events still held: events evicted by count or
        age leave records behind, which a long-held old event would otherwise pin."""
        self._order = deque(
            (stream, offset)
            for stream, offset in self._order
            if stream.entries and stream.entries[0][0] <= offset <= stream.offset
        )

    def _drop_through(self, stream: Stream, upto: int) -> None:
        entries = stream.entries
        while entries and entries[0][0] <= upto:
            self.release(entries.popleft())

    def release(self, entry: tuple[int, float, bytes]) -> None:
        """An event left its stream (count, age or cap): stop charging it."""
        self.used -= len(entry[2]) + ENTRY_OVERHEAD
        self.events -= 1

    def trim(self) -> None:
        """Forget order records of events that already left (bounded bookkeeping)."""
        order = self._order
        while order:
            stream, offset = order[0]
            if stream.entries and stream.entries[0][0] <= offset:
                return
            order.popleft()


class History:
    """One app's streams on this node.

    Offsets are assigned here (:meth:`append`) on a single node, or elsewhere (a cluster's
    sequencer) and recorded with :meth:`record`. ``new_epoch`` makes a fresh epoch string.
    """

    def __init__(
        self, limits: HistoryLimits, budget: HistoryBudget, new_epoch: Callable[[], str]
    ) -> None:
        self.limits = limits
        self.budget = budget
        self._new_epoch = new_epoch
        self.streams: dict[str, Stream] = {}

    def __len__(self) -> int:
        return len(self.streams)

    def __iter__(self) -> Iterator[Stream]:
        return iter(list(self.streams.values()))

    def stream(self, name: str, now: float) -> Stream:
        """The stream of channel ``name``, started in a new epoch at offset 0 if unknown."""
        stream = self.streams.get(name)
        if stream is None:
            stream = self._create(name, self._new_epoch(), 0)
        stream.used = now
        return stream

    def position(self, name: str, now: float) -> Position:
        """Where channel ``name`` stands now (a new stream stands at offset 0)."""
        return self.stream(name, now).position()

    def append(self, name: str, payload: bytes, now: float, exclude: str | None = None) -> bytes:
        """Assign the next offset to an encoded event, store it, and return its payload.

        ``exclude`` is the socket id the event is not sent to (see :meth:`excluded_for`).
        """
        stream = self.stream(name, now)
        offset = stream.offset + 1
        stored = with_offset(payload, offset)
        self._store(stream, offset, stored, now, exclude)
        return stored

    def record(
        self,
        name: str,
        epoch: str,
        offset: int,
        payload: bytes,
        now: float,
        exclude: str | None = None,
    ) -> bool:
        """Store an event whose position was assigned elsewhere (``payload`` has its offset).

        An event that continues the stream is appended. A new epoch, or an offset that
        skips ahead, restarts the stream there (what came before is unknown to this node).
        An offset this stream already passed is ignored: returns ``False`` (not new).
        """
        stream = self.streams.get(name)
        if stream is None or stream.epoch != epoch or offset > stream.offset + 1:
            self.forget(name)
            stream = self._create(name, epoch, offset - 1)
        elif offset <= stream.offset:
            return False
        stream.used = now
        self._store(stream, offset, payload, now, exclude)
        return True

    def merge(self, name: str, snapshot: StreamSnapshot, now: float) -> None:
        """Combine a shared store's copy of a stream with what this node follows.

        A stream this node follows in the same epoch keeps its offset (events after it are
        on their way to this node in order); older events of the snapshot are put in front
        of what it holds when nothing lies between. Otherwise the snapshot replaces it.
        """
        local = self.streams.get(name)
        if local is not None and local.epoch == snapshot.epoch:
            local.used = now
            older = [e for e in snapshot.entries if e[0] < local.first]
            if older and older[-1][0] == local.first - 1:
                kept = list(local.entries)
                excluded = {**snapshot.excluded, **(local.excluded or {})}
                self.forget(name)
                stream = self._create(name, local.epoch, older[0][0] - 1)
                stream.used = now
                for offset, stored_at, payload in older + kept:
                    self._store(stream, offset, payload, stored_at, excluded.get(offset))
                stream.offset = local.offset
            return
        self.forget(name)
        stream = self._create(name, snapshot.epoch, snapshot.offset)
        stream.used = now
        if snapshot.entries:
            stream.offset = snapshot.entries[0][0] - 1
            for offset, stored_at, payload in snapshot.entries:
                self._store(stream, offset, payload, stored_at, snapshot.excluded.get(offset))
            stream.offset = snapshot.offset

    def _store(
        self, stream: Stream, offset: int, payload: bytes, now: float, exclude: str | None = None
    ) -> None:
        stream.offset = offset
        entry = (offset, now, payload)
        stream.entries.append(entry)
        limits = self.limits
        budget = self.budget
        if len(stream.entries) > limits.max_events:
            budget.release(stream.entries.popleft())
        budget.charge(stream, offset, len(payload) + ENTRY_OVERHEAD)
        if exclude is not None:
            if stream.excluded is None:
                stream.excluded = {}
            stream.excluded[offset] = exclude
            if len(stream.excluded) > len(stream.entries):  # forget evicted ones
                first = stream.first
                stream.excluded = {o: x for o, x in stream.excluded.items() if o >= first}

    def _expire(self, stream: Stream, now: float) -> None:
        horizon = now - self.limits.ttl
        entries = stream.entries
        while entries and entries[0][1] <= horizon:
            self.budget.release(entries.popleft())

    def since(self, name: str, position: Position, now: float) -> list[bytes] | None:
        """Every stored event after ``position``, in order, or ``None`` if any is gone.

        ``None`` also when the epoch differs or the offset is not one this stream reached:
        the client cannot be brought up to date and must reload its state.
        """
        stream = self.streams.get(name)
        if stream is None or stream.epoch != position.epoch:
            return None
        after = position.offset
        if after < 0 or after > stream.offset:
            return None
        stream.used = now
        if after == stream.offset:
            return []
        self._expire(stream, now)
        first = stream.first
        if first > after + 1:
            return None
        return [entry[2] for entry in list(stream.entries)[after + 1 - first :]]

    def excluded_for(self, name: str, socket_id: str) -> set[int]:
        """Offsets of held events that were not sent to ``socket_id``.

        A client that recovers on a new connection names its previous socket: the events
        its own app triggered for everyone else (Laravel's ``toOthers()``) are not replayed
        to it, as they were not delivered to it live.
        """
        stream = self.streams.get(name)
        if stream is None or not stream.excluded:
            return set()
        return {offset for offset, sid in stream.excluded.items() if sid == socket_id}

    def held(self, name: str, now: float) -> list[tuple[int, bytes]]:
        """``(offset, payload)`` of every event held for ``name``, oldest first."""
        stream = self.streams.get(name)
        if stream is None:
            return []
        self._expire(stream, now)
        return [(entry[0], entry[2]) for entry in stream.entries]

    def _create(self, name: str, epoch: str, offset: int) -> Stream:
        """A new stream header for ``name`` (replacing none: forget the old one first)."""
        stream = self.streams[name] = Stream(name, epoch, offset)
        self.budget.headers += 1
        return stream

    def forget(self, name: str) -> None:
        """Drop a stream and its events (its next use starts a new epoch)."""
        stream = self.streams.pop(name, None)
        if stream is not None:
            self.budget.headers -= 1
            while stream.entries:
                self.budget.release(stream.entries.popleft())

    def clear(self) -> None:
        """Forget every stream (history may have a hole: every epoch must change)."""
        for name in list(self.streams):
            self.forget(name)

    def sweep(self, now: float, occupied: Callable[[str], bool]) -> None:
        """Expire old events; drop idle headers of channels nobody here subscribes to, and
        while the node is over its cap, the least recently used such headers."""
        idle: list[Stream] = []
        for stream in list(self.streams.values()):
            self._expire(stream, now)
            if stream.entries or occupied(stream.name):
                continue
            if now - stream.used > max(HEADER_KEEP, self.limits.ttl):
                self.forget(stream.name)
            else:
                idle.append(stream)
        if self.budget.over:
            idle.sort(key=lambda stream: (stream.used, stream.name))
            for stream in idle:
                if not self.budget.over:
                    break
                self.forget(stream.name)
        self.budget.trim()


def event_fields(payload: bytes) -> dict[str, object]:
    """``{"offset", "event", "data"}`` of a stored payload, for the HTTP history route."""
    document = orjson.loads(payload)
    return {"offset": document["offset"], "event": document["event"], "data": document["data"]}
