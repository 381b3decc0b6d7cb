"""The clock of subscription counting: calls a hub's ``flush_counts`` when it is due."""

from __future__ import annotations

import asyncio
import logging

from overtone.hub import Hub

log = logging.getLogger("overtone.server")


class CountClock:
    """At most one timer per hub, set for the soonest flush anyone asked for.

    The hub asks (``Hub.counts_due``) when a channel's count changes and nothing was marked
    yet; a flush that leaves channels not yet due asks again for the soonest of them.
    """

    __slots__ = ("_handle", "_hub", "_loop")

    def __init__(self, hub: Hub, loop: asyncio.AbstractEventLoop) -> None:
        self._hub = hub
        self._loop = loop
        self._handle: asyncio.TimerHandle | None = None
        hub.counts_due = self.due

    def due(self, delay: float) -> None:
        """Flush in ``delay`` seconds, unless a flush is already set to come sooner."""
        when = self._loop.time() + delay
        if self._handle is not None:
            if self._handle.when() <= when:
                return
            self._handle.cancel()
        self._handle = self._loop.call_at(when, self._flush)

    def _flush(self) -> None:
        self._handle = None
        try:
            wait = self._hub.flush_counts(self._loop.time())
        except Exception:  # keep counting whatever one flush met
            log.exception("subscription count flush failed")
            return
        if wait is not None:
            self.due(wait)

    def stop(self) -> None:
        """Cancel the pending flush (shutdown)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
