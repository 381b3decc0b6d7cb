"""The broker interface: how a node's envelopes reach every other node.

A broker carries opaque envelopes (bytes) on one shared channel. Contract, shared by every
implementation and checked by ``tests/cluster/test_broker_contract.py``:

- :meth:`Broker.start` returns promptly; connecting may finish in the background, and each
  time the broker becomes connected (first time and after an outage) ``on_connected`` runs.
- An envelope (a JSON object) given to :meth:`Broker.publish` while connected reaches
  ``on_message`` of every broker on the same channel, the publisher included, at most once,
  and every broker sees all envelopes in the same order. A broker may deliver several
  consecutive envelopes of one publisher together, as one JSON array.
- While disconnected, :meth:`Broker.publish` drops envelopes (``dropped`` counts them).
- :meth:`Broker.close` sends what is queued (bounded by ``timeout``), then disconnects.
- :meth:`Broker.peers` counts the other brokers listening (used to wait for their state
  before accepting connections).
- History (protocol.md §8): an envelope published with ``appends`` is *sequenced*: the
  broker gives each append the next offset of its stream (a new stream gets a new epoch),
  stores it, and delivers ``{"q": [[epoch, offset], ...], "e": envelope}`` (``e`` may be
  an array of envelopes), the positions in the order of the appends, atomically with the
  storing. ``resets`` forget streams first (their next event starts a new epoch).
  :meth:`Broker.stream` reads one stream (creating its header if it has none), or
  ``None`` while the store is unreachable; it returns only once every envelope published
  before the read has been delivered to this broker's ``on_message`` (so an event numbered
  before the read is never still on its way when the snapshot is used).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from overtone.channels.history import StreamSnapshot

OnMessage = Callable[[bytes], None]
OnConnected = Callable[[], None]


@dataclass(frozen=True, slots=True)
class StreamAppend:
    """One event to number and store: its app, channel, payload (without offset), bounds."""

    app_id: str
    channel: str
    payload: bytes
    max_events: int
    ttl: float
    exclude: str | None = None
    """The socket id the event is not delivered to (kept so a recovery skips it too)."""


StreamRef = tuple[str, str]
"""``(app_id, channel)`` of a stream."""


class Broker(Protocol):
    """What the server needs from a broker."""

    connected: bool
    dropped: int

    async def start(self) -> None:
        """Begin connecting and receiving."""

    def publish(
        self,
        envelope: bytes,
        appends: Sequence[StreamAppend] = (),
        resets: Sequence[StreamRef] = (),
    ) -> None:
        """Send an envelope to the other nodes (never blocks), sequencing ``appends``."""

    async def stream(self, app_id: str, channel: str, ttl: float) -> StreamSnapshot | None:
        """The stored stream (events younger than ``ttl`` s), ``None`` if unreachable.

        ``stored_at`` of its entries is in seconds of wall-clock time (``time.time()``).
        """

    async def close(self, timeout: float = 2.0) -> None:
        """Flush, then disconnect."""

    async def peers(self) -> int:
        """How many other brokers listen on the channel now (0 if unknown)."""


BrokerFactory = Callable[[OnMessage, OnConnected], Broker]
