"""The contract between the transport and the route sets: a request, its answer, an answer
that waits, and a response that stays open.

The transport (:mod:`overtone.transport`) turns bytes into :class:`Request` objects and hands
each to the first :class:`RouteSet` whose :meth:`~RouteSet.handles` accepts its path; the
route sets (the HTTP API, the dashboard, ``/ready`` and ``/metrics``) answer with a
:class:`Response` or a :class:`Stream`. Neither side imports the other: both import this
module, which is pure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

Headers = Mapping[bytes, bytes]
"""Request headers, names lower-cased; repeated headers joined with ``", "``."""


# The dataclasses made per request are not frozen: a frozen dataclass's __init__ takes
# twice as long. Treat them as read-only.


@dataclass(slots=True)
class Request:
    """One complete HTTP request."""

    method: str
    target: str
    """The raw request target: path and query."""
    path: str
    """The target's path, percent-escapes kept."""
    headers: Headers
    body: bytes
    peer: str | None
    """The TCP peer's address (a proxy's, behind one), ``None`` when unknown."""


@dataclass(slots=True)
class Response:
    """Status and body of an answer (JSON unless ``content_type`` says otherwise).

    The transport answers ``304`` instead when the request's ``If-None-Match`` names the
    ``ETag`` among :attr:`headers`, and drops the body of an answer to ``HEAD``.
    """

    status: int
    body: bytes
    content_type: bytes = b"application/json"
    headers: tuple[tuple[bytes, bytes], ...] = ()
    pending: Pending | None = None
    """Set when the answer is not ready yet: see :class:`Pending`."""


@dataclass(slots=True)
class Pending:
    """An answer that waits for something (a history stream read from the cluster's store,
    messages for a polling client).

    The transport calls ``wait(ready)`` once; when ``ready`` runs it writes ``answer()``.
    When the connection is gone before (or as) ``ready`` runs, it calls ``cancel()`` instead
    of ``answer()``, exactly once, so nothing the answer would have taken is lost. Requests
    pipelined behind it on the same connection wait, in order.
    """

    wait: Callable[[Callable[[], None]], None]
    answer: Callable[[], Response | Stream]
    """What to send once ready: a response, or a response that stays open."""
    cancel: Callable[[], None] | None = None
    pause_reading: bool = True
    """Stop reading the connection meanwhile (a short wait); a long one keeps reading, so
    that a client that goes away is noticed at once and ``cancel`` runs."""


class StreamWriter(Protocol):
    """The transport's side of an open :class:`Stream`."""

    def write(self, data: bytes) -> None:
        """Send ``data`` (never blocks; it is buffered while the peer is slow)."""

    def buffered(self) -> int:
        """Bytes written but not yet sent: how far the reader has fallen behind."""

    def close(self) -> None:
        """End the response and close the connection (``closed`` follows)."""


@dataclass(slots=True)
class Stream:
    """A response that stays open (server-sent events).

    The transport writes ``head`` (status line and headers, no ``Content-Length``), then
    calls ``opened(writer)``; once the connection is gone, for whatever reason, it calls
    ``closed(writer)`` exactly once. Anything more the client sends is ignored.
    """

    head: bytes
    opened: Callable[[StreamWriter], None]
    closed: Callable[[StreamWriter], None]


class RouteSet(Protocol):
    """A group of HTTP routes served on the listener's port."""

    def handles(self, path: str) -> bool:
        """Whether requests for ``path`` are this route set's (asked in order; the first
        that says yes answers)."""

    def handle(self, request: Request, now: float) -> Response | Stream:
        """The answer to ``request``; ``now`` is the loop's monotonic time."""
