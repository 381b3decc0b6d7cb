"""The last event of each cache channel, kept for a TTL that outlives an empty channel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class CachedEvent:
    """An encoded event frame payload and when it stops being replayed."""

    payload: bytes
    expires_at: float


class EventCache:
    """Channel name → last event; entries expire ``ttl`` seconds after being stored.

    Time is passed in (``now``); expired entries are dropped on read and by :meth:`sweep`.
    """

    __slots__ = ("_entries", "ttl")

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[str, CachedEvent] = {}

    def put(self, channel: str, payload: bytes, now: float) -> None:
        """Remember ``payload`` as the channel's last event."""
        self._entries[channel] = CachedEvent(payload, now + self.ttl)

    def get(self, channel: str, now: float) -> bytes | None:
        """The channel's last event if it has not expired."""
        entry = self._entries.get(channel)
        if entry is None:
            return None
        if entry.expires_at <= now:
            del self._entries[channel]
            return None
        return entry.payload

    def sweep(self, now: float) -> None:
        """Drop every expired entry (bounded memory for channels nobody reads again)."""
        expired = [name for name, e in self._entries.items() if e.expires_at <= now]
        for name in expired:
            del self._entries[name]

    def __len__(self) -> int:
        return len(self._entries)

    def export(self, now: float) -> dict[str, list[Any]]:
        """Live entries as ``{channel: [payload, seconds left]}`` (for a joining node)."""
        return {
            name: [e.payload.decode(), e.expires_at - now]
            for name, e in self._entries.items()
            if e.expires_at > now
        }

    def merge(self, entries: object, now: float) -> None:
        """Adopt entries from :meth:`export` of another node; local ones are kept."""
        if not isinstance(entries, dict):
            return
        for name, entry in entries.items():
            if name in self._entries or not isinstance(entry, list) or len(entry) != 2:
                continue
            payload, left = entry
            if isinstance(payload, str) and isinstance(left, int | float) and left > 0:
                self._entries[name] = CachedEvent(payload.encode(), now + min(left, self.ttl))
