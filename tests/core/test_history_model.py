"""History against a simple model: every event ever published, and the three bounds.

The model keeps, per channel, the log of every event published in each epoch (offset,
publish time, stored bytes) and decides which of them must still be held: the last
``max_events`` of the channel, younger than ``ttl``, and not pushed out of the node budget
(oldest first over every channel). Expiry by age is lazy in the implementation (done on
reads and sweeps); events past their ttl are always the oldest ones, so the node budget
evicts them first and the model may expire eagerly.

Properties checked after random sequences of publish / wait / position / recover /
forget / clear / sweep:

- ``since`` never returns a wrong list: exactly the logged events after the offset, in
  order, none missing, none twice, none older than ttl;
- it refuses (``None``) exactly when the model says an event after the offset is gone or
  the position is not one of the current epoch; it never refuses a recoverable position;
- a header is dropped only when idle, empty and unoccupied, and every later position is a
  new epoch never seen before;
- the budget's ``used`` never exceeds the cap and matches the model after a sweep.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count

import orjson
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from overtone.channels.history import (
    ENTRY_OVERHEAD,
    HEADER_COST,
    HEADER_KEEP,
    History,
    HistoryBudget,
    HistoryLimits,
    Position,
)

CHANNELS = ("a", "b", "c")
channels = st.sampled_from(CHANNELS)
DATA = st.sampled_from(["", "1", '{"quoted":"json"}', "é" * 9, "x" * 40, "line\nbreak\\"])
"""Event data of several sizes, some escaped or multi-byte when encoded."""


@dataclass
class Logged:
    """One published event as the model remembers it."""

    offset: int
    at: float
    stored: bytes
    seq: int
    """Publish order over every channel (the budget evicts in this order)."""

    @property
    def cost(self) -> int:
        return len(self.stored) + ENTRY_OVERHEAD


@dataclass
class ChannelModel:
    epoch: str | None = None
    """``None``: no header (the next use starts a new epoch)."""
    offset: int = 0
    used: float = 0.0
    held: list[Logged] = field(default_factory=list)
    log: dict[str, list[Logged]] = field(default_factory=dict)
    """Every event ever published, per epoch."""


class HistoryMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.seq = count()
        self.model: dict[str, ChannelModel] = {c: ChannelModel() for c in CHANNELS}
        self.seen: list[tuple[str, Position]] = []
        self.epochs_seen: set[str] = set()
        self.occupied: set[str] = set()
        self.ids = count(1)

    @initialize(
        max_events=st.integers(1, 6),
        ttl=st.sampled_from([5.0, 30.0, 2 * HEADER_KEEP]),
        memory=st.sampled_from([10**9, 2_000, 600, 250]),
    )
    def start(self, max_events: int, ttl: float, memory: int) -> None:
        self.limits = HistoryLimits(max_events=max_events, ttl=ttl)
        self.budget = HistoryBudget(memory)
        self.history = History(self.limits, self.budget, lambda: f"E{next(self.ids)}")

    # -- the model ----------------------------------------------------------------------

    def expire(self, channel: ChannelModel) -> None:
        horizon = self.now - self.limits.ttl
        channel.held = [e for e in channel.held if e.at > horizon]

    def expire_all(self) -> None:
        for channel in self.model.values():
            self.expire(channel)

    def held_cost(self) -> int:
        return sum(e.cost for c in self.model.values() for e in c.held)

    def use(self, name: str) -> ChannelModel:
        """The model's side of ``History.stream``: a header, started if missing."""
        channel = self.model[name]
        if channel.epoch is None:
            epoch = self.history.streams[name].epoch
            assert epoch not in self.epochs_seen, "an epoch was reused"
            self.epochs_seen.add(epoch)
            channel.epoch, channel.offset, channel.held = epoch, 0, []
            channel.log[epoch] = []
        channel.used = self.now
        return channel

    def expected_since(self, name: str, position: Position) -> list[bytes] | None:
        channel = self.model[name]
        if channel.epoch is None or channel.epoch != position.epoch:
            return None
        if not 0 <= position.offset <= channel.offset:
            return None
        channel.used = self.now
        if position.offset == channel.offset:
            return []
        self.expire(channel)
        wanted = list(range(position.offset + 1, channel.offset + 1))
        held = [e for e in channel.held if e.offset > position.offset]
        if [e.offset for e in held] != wanted:
            return None
        return [e.stored for e in held]

    # -- rules --------------------------------------------------------------------------

    @rule(name=channels, data=DATA, burst=st.integers(1, 3))
    def publish(self, name: str, data: str, burst: int) -> None:
        for _ in range(burst):
            self.publish_one(name, data)

    def publish_one(self, name: str, data: str) -> None:
        payload = orjson.dumps({"event": "e", "channel": name, "data": data})
        stored = self.history.append(name, payload, self.now)
        channel = self.use(name)
        channel.offset += 1
        assert orjson.loads(stored) == {
            "event": "e",
            "channel": name,
            "data": data,
            "offset": channel.offset,
        }
        assert channel.epoch is not None
        logged = Logged(channel.offset, self.now, stored, next(self.seq))
        channel.log[channel.epoch].append(logged)
        channel.held.append(logged)
        if len(channel.held) > self.limits.max_events:
            channel.held.pop(0)
        self.expire_all()
        while self.held_cost() > self.budget.max_bytes:
            oldest = min((c for c in self.model.values() if c.held), key=lambda c: c.held[0].seq)
            oldest.held.pop(0)
        self.seen.append((name, Position(channel.epoch, channel.offset)))

    @rule(seconds=st.sampled_from([0.5, 1.0, 2.0, 4.75, 5.0, 29.0, 30.0, HEADER_KEEP + 1]))
    def wait(self, seconds: float) -> None:
        self.now += seconds

    @rule(name=channels)
    def position(self, name: str) -> None:
        position = self.history.position(name, self.now)
        channel = self.use(name)
        assert position == Position(channel.epoch or "", channel.offset)
        self.seen.append((name, position))

    @rule(pick=st.integers(0, 8), back=st.sampled_from([1, 2, 3, 0, 6]))
    def recover_from_a_seen_position(self, pick: int, back: int) -> None:
        if not self.seen:
            return
        name, position = self.seen[-1 - pick % len(self.seen)]
        self.check_since(name, Position(position.epoch, max(0, position.offset - back)))

    @rule(
        name=channels,
        epoch=st.sampled_from(["current", "stale", "E1", "E2"]),
        offset=st.integers(-1, 12),
    )
    def recover_from_anything(self, name: str, epoch: str, offset: int) -> None:
        if epoch == "current":
            epoch = self.model[name].epoch or "stale"
        self.check_since(name, Position(epoch, offset))

    def check_since(self, name: str, position: Position) -> None:
        got = self.history.since(name, position, self.now)
        expected = self.expected_since(name, position)
        assert got == expected, (name, position, got, expected)
        if got is not None:
            # The plain log property: exactly what was published after the offset.
            log = self.model[name].log[position.epoch]
            assert got == [e.stored for e in log if e.offset > position.offset]
            horizon = self.now - self.limits.ttl
            assert all(e.at > horizon for e in log[position.offset :])

    @rule(action=st.sampled_from(["forget", "clear", "occupy", "vacate"]), name=channels)
    def churn(self, action: str, name: str) -> None:
        if action == "forget":
            self.history.forget(name)
            self.model[name].epoch, self.model[name].held = None, []
        elif action == "clear":
            self.history.clear()
            for channel in self.model.values():
                channel.epoch, channel.held = None, []
        elif action == "occupy":
            self.occupied.add(name)
        else:
            self.occupied.discard(name)

    @rule()
    def sweep(self) -> None:
        self.history.sweep(self.now, self.occupied.__contains__)
        self.expire_all()
        keep = max(HEADER_KEEP, self.limits.ttl)
        idle = []
        for name, channel in self.model.items():
            if channel.epoch is None or channel.held or name in self.occupied:
                continue
            if self.now - channel.used > keep:
                channel.epoch = None
            else:
                idle.append((channel.used, name, channel))
        # Over the cap (events and headers), the least recently used idle headers go too.
        headers = sum(1 for c in self.model.values() if c.epoch is not None)
        for _, _, channel in sorted(idle, key=lambda item: item[:2]):
            if self.held_cost() + headers * HEADER_COST <= self.budget.max_bytes:
                break
            channel.epoch = None
            headers -= 1
        assert self.budget.used == self.held_cost()
        assert self.budget.headers == headers

    # -- invariants ---------------------------------------------------------------------

    @invariant()
    def headers_match(self) -> None:
        assert set(self.history.streams) == {
            n for n, c in self.model.items() if c.epoch is not None
        }
        for name, stream in self.history.streams.items():
            channel = self.model[name]
            assert (stream.epoch, stream.offset) == (channel.epoch, channel.offset)

    @invariant()
    def within_the_budget(self) -> None:
        assert 0 <= self.budget.used <= self.budget.max_bytes


HistoryMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestHistoryModel = HistoryMachine.TestCase
