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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

OnMessage = Callable[[bytes], None]
OnConnected = Callable[[], None]


class Broker(Protocol):
    """What the server needs from a broker."""

    connected: bool
    dropped: int

    async def start(self) -> None:
        """Begin connecting and receiving."""

    def publish(self, envelope: bytes) -> None:
        """Send an envelope to the other nodes (never blocks)."""

    async def close(self, timeout: float = 2.0) -> None:
        """Flush, then disconnect."""

    async def peers(self) -> int:
        """How many other brokers listen on the channel now (0 if unknown)."""


BrokerFactory = Callable[[OnMessage, OnConnected], Broker]
