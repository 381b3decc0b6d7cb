"""Fail soft: one clear warning per minute per problem, or an exception in strict mode.

A web request that broadcasts must never fail or stall because realtime is off or the
server is down. :class:`Reporter` turns every such problem into a logged warning on the
``overtone.broadcast`` logger, rate-limited by :class:`WarningLimiter`, and the operation
returns ``None``; with ``strict=True`` it raises the :class:`BroadcastError` instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from overtone.broadcast.errors import BroadcastError, ServerRejected, ServerUnreachable

logger = logging.getLogger("overtone.broadcast")

WARNING_INTERVAL = 60.0


class WarningLimiter:
    """Lets the same warning key through at most once per ``interval`` seconds.

    Thread-safe. Shared by default across every client in the process, so a web app that
    builds a broadcaster per request still logs one line per minute per problem.
    """

    def __init__(
        self,
        interval: float = WARNING_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 1024,
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._max_keys = max_keys
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """Whether a warning with this key may be logged now (and remember that it was)."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                return False
            if len(self._last) >= self._max_keys:
                self._last = {k: t for k, t in self._last.items() if now - t < self.interval}
            self._last[key] = now
            return True


DEFAULT_LIMITER = WarningLimiter()


class Reporter:
    """Reports failures for one client: warn (rate-limited) or raise when ``strict``."""

    def __init__(
        self, strict: bool, limiter: WarningLimiter | None = None, log: logging.Logger = logger
    ) -> None:
        self.strict = strict
        self.limiter = DEFAULT_LIMITER if limiter is None else limiter
        self.log = log
        self._failing_since_success = False

    def fail(self, error: BroadcastError) -> None:
        """Raise ``error`` when strict; else log it unless logged in the last interval."""
        if self.strict:
            raise error
        self.warn(error)

    def warn(self, error: BroadcastError) -> None:
        """Log ``error`` as a warning, at most once per interval for its key."""
        if isinstance(error, ServerUnreachable | ServerRejected):
            self._failing_since_success = True
        if self.limiter.allow(error.warning_key):
            self.log.warning("%s", error)

    def recovered(self, server_url: str) -> None:
        """Note a successful exchange; after server failures, log once that it works again."""
        if self._failing_since_success:
            self._failing_since_success = False
            self.log.info("overtone at %s answers again; broadcasting resumed", server_url)
