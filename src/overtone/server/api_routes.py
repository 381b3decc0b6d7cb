"""The HTTP API (:mod:`overtone.http.api`) as the listener's last route set, timed for
``/metrics`` and the dashboard."""

from __future__ import annotations

import functools
import time

from overtone.http.api import Api
from overtone.routing import Pending, Request, Response, Stream
from overtone.stats import Latency

ROUTE_KINDS = frozenset(
    {"events", "batch_events", "connections", "terminate_connections", "up", "recovery.js"}
)


@functools.lru_cache(maxsize=1024)
def route_kind(path: str) -> str:
    """A low-cardinality label for an API path (``events``, ``channel``, ...).

    Labels come from a fixed set: any other path (a scanner's, a browser's
    ``/favicon.ico``) is ``other``, so no request can add a metric series. Cached: an app
    calls the same few paths over and over.
    """
    parts = path.partition("?")[0].strip("/").split("/")
    if "apps" in parts:
        rest = parts[parts.index("apps") + 2 :]
        if rest and rest[0] == "channels":
            kind = {1: "channels", 2: "channel", 3: rest[-1]}.get(len(rest), "other")
            return kind if kind in ("channels", "channel", "users", "history") else "other"
        kind = (rest[0] if len(rest) == 1 else rest[-1]) if rest else "other"
        return kind if kind in ROUTE_KINDS else "other"
    return parts[-1] if parts[-1] in ROUTE_KINDS else "other"


class ApiRoutes:
    """Answers every path the route sets before it did not take (``/up``, the add-on,
    ``/apps/...``, and the API's 404); records each answer's handling time in ``latency``."""

    def __init__(self, api: Api, latency: Latency) -> None:
        self.api = api
        self.latency = latency

    def handles(self, path: str) -> bool:
        """Always: the API answers what nothing else does."""
        return True

    def handle(self, request: Request, now: float) -> Response:
        """The API's answer; a pending one is timed when it is finally given."""
        started = time.perf_counter()
        answer = self.api.handle(request.method, request.target, request.body, now, time.time())
        kind = route_kind(request.path)
        pending = answer.pending
        if pending is None:
            self.latency.observe(kind, time.perf_counter() - started, answer.status)
            return answer

        def timed() -> Response | Stream:
            final = pending.answer()
            assert isinstance(final, Response)  # the API's answers never stay open
            self.latency.observe(kind, time.perf_counter() - started, final.status)
            return final

        answer.pending = Pending(pending.wait, timed)
        return answer
