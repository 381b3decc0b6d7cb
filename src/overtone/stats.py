"""Counters of one app on this node, kept as plain integers on the hot paths.

They are read at scrape time (``/metrics``); incrementing one costs an attribute add, not a
lock, which is why they are not ``prometheus_client`` metrics themselves.
"""

from __future__ import annotations

import bisect
from collections import Counter


class AppStats:
    """Messages and bytes in and out, connections opened and closed, errors by code."""

    __slots__ = (
        "api_requests",
        "bytes_in",
        "bytes_out",
        "connections_closed",
        "connections_opened",
        "errors",
        "messages_in",
        "messages_out",
        "recovered",
        "resynced",
    )

    def __init__(self) -> None:
        self.messages_in = 0
        self.bytes_in = 0
        self.messages_out = 0
        self.bytes_out = 0
        self.connections_opened = 0
        self.connections_closed = 0
        self.errors: Counter[int] = Counter()
        self.api_requests = 0
        """HTTP API requests to this app whose signature was valid."""
        self.recovered = 0
        """Subscriptions that asked to recover and got every missed event."""
        self.resynced = 0
        """Subscriptions that asked to recover and were told ``recovered: false``."""

    def sent(self, frame: bytes, count: int = 1) -> None:
        """``count`` copies of ``frame`` were written."""
        self.messages_out += count
        self.bytes_out += len(frame) * count


LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0)


class Latency:
    """A fixed-bucket histogram of HTTP API handling time, per route kind (a label from
    a fixed set), and the count of answers per route kind and status."""

    def __init__(self) -> None:
        self.buckets: dict[str, list[int]] = {}
        self.sums: dict[str, float] = {}
        self.statuses: Counter[tuple[str, int]] = Counter()

    def observe(self, route: str, seconds: float, status: int) -> None:
        counts = self.buckets.get(route)
        if counts is None:
            counts = self.buckets[route] = [0] * (len(LATENCY_BUCKETS) + 1)
        counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.sums[route] = self.sums.get(route, 0.0) + seconds
        key = (route, status)
        self.statuses[key] = self.statuses.get(key, 0) + 1
