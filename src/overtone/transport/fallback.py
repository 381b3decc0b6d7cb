"""pusher-js's HTTP fallback transports, ``xhr_streaming`` and ``xhr_polling`` (protocol.md §9).

A fallback session is a connection like a WebSocket: the hub sees it only through its
:class:`~overtone.session.Session` (``write``, ``close``, ``touch``). It is reached by HTTP
requests under ``{path}{OVERTONE_HTTP_FALLBACK_PATH}/app/{key}/{server}/{session}/``, which
the listener routes here before any route set:

- ``POST .../xhr_streaming`` and ``POST .../xhr`` receive. The first receive request of a
  session id opens the session (``o``); a streaming response then stays open and grows
  (chunked), a polling response returns what is queued, or waits for it (at most
  ``OVERTONE_HTTP_POLL_TIMEOUT``, then a heartbeat ``h``). The newest receive request of a
  session takes over; an older one still open is ended.
- ``POST .../xhr_send`` carries client messages, ``["<frame>", ...]``, handled in the order
  the requests arrive; ``[]`` is a heartbeat.
- ``OPTIONS`` on any of them answers the CORS preflight of pages on another origin, within
  the app's allowed origins.

What is queued for a client between two receive requests is bounded by
``OVERTONE_MAX_WRITE_BUFFER``, like a slow WebSocket's buffer; past it the session is
dropped. A session without a receive request for ``OVERTONE_HTTP_SESSION_TIMEOUT`` seconds
is closed (presence members leave, counts follow). Errors that refuse a session (unknown
key, protocol version, capacity) are answered as pusher-js reads them: ``o``, the
``pusher:error`` message, then ``c[code,"reason"]``.

A session's path is its only credential: it is never logged nor shown.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Callable
from typing import NamedTuple

import orjson

from overtone.protocol import errors, messages
from overtone.protocol.connect import protocol_error, query_value
from overtone.protocol.errors import PusherError
from overtone.protocol.frames import frame_payloads
from overtone.routing import Pending, Request, Response, Stream
from overtone.transport.context import ConnectionContext
from overtone.transport.fallback_cluster import FallbackCluster
from overtone.transport.fallback_session import (
    HEARTBEAT,
    LAST_CHUNK,
    OPEN,
    FallbackSession,
    chunk,
    close_line,
    messages_line,
)

log = logging.getLogger("overtone.fallback")

STREAMING, POLLING = "xhr_streaming", "xhr_polling"
"""The transports' names, as pusher-js's ``enabledTransports`` spells them."""
HEARTBEAT_EVERY = 25.0
"""Seconds of silence after which a stream gets a heartbeat ``h`` (proxies close idle ones)."""
SWEEP_EVERY = 1.0
"""Seconds between sweeps for expired sessions, timed-out polls and stream heartbeats."""

_SERVER = re.compile(r"[0-9]{1,3}")
_SESSION = re.compile(r"[0-9A-Za-z_-]{1,64}")
_BODY_TYPE = b"application/javascript; charset=UTF-8"
_NO_STORE = (b"Cache-Control", b"no-store")
_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: " + _BODY_TYPE + b"\r\n"
    b"Cache-Control: no-store\r\n"
    b"X-Accel-Buffering: no\r\n"  # nginx: pass each chunk on at once
    b"Transfer-Encoding: chunked\r\n"
    b"Connection: close\r\n"
)
_STREAM_HEAD_END = _STREAM_HEAD + b"\r\n"


class _Call(NamedTuple):
    """One fallback request, as the routing below passes it on."""

    key: str
    """``{app key}/{server}/{session id}``: the session's name in the registry."""
    app_key: str
    kind: str
    """``xhr_streaming``, ``xhr`` (a poll) or ``xhr_send``."""
    request: Request
    origin: bytes | None
    cors: tuple[tuple[bytes, bytes], ...]


def _stream_head(cors: tuple[tuple[bytes, bytes], ...]) -> bytes:
    """The head of a streaming response: shared, unless it carries CORS headers."""
    if not cors:
        return _STREAM_HEAD_END
    return _STREAM_HEAD + b"".join(n + b": " + v + b"\r\n" for n, v in cors) + b"\r\n"


def _json(status: int, message: str, cors: tuple[tuple[bytes, bytes], ...]) -> Response:
    return Response(status, orjson.dumps({"error": message}), headers=(_NO_STORE, *cors))


class FallbackSessions:
    """The listener's fallback sessions and the route set that reaches them."""

    def __init__(self, ctx: ConnectionContext) -> None:
        settings = ctx.settings
        self.ctx = ctx
        self.prefix = settings.path + settings.http_fallback_path + "/app/"
        self.session_timeout = settings.http_session_timeout
        self.poll_timeout = settings.http_poll_timeout
        self.max_buffer = settings.max_write_buffer
        self.sessions: dict[str, FallbackSession] = {}
        self.counts = {STREAMING: 0, POLLING: 0}
        """Open sessions by the transport that opened them."""
        self.cluster: FallbackCluster | None = None
        """Set when this node is part of a cluster (see :mod:`.fallback_cluster`)."""
        self._sweep: asyncio.TimerHandle | None = None
        self._due: list[FallbackSession] = []
        self._last_frame: bytes | None = None
        self._last_items: list[bytes] = []

    # -- life ----------------------------------------------------------------------------

    def start(self) -> None:
        """Begin sweeping (idempotent)."""
        if self._sweep is None:
            self._sweep = self.ctx.loop.call_later(SWEEP_EVERY, self._run_sweep)

    def close(self) -> None:
        """Stop sweeping (shutdown)."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None

    def _run_sweep(self) -> None:
        self._sweep = self.ctx.loop.call_later(SWEEP_EVERY, self._run_sweep)
        now = self.ctx.loop.time()
        for fallback in list(self.sessions.values()):
            if fallback.poll is not None and now - fallback.poll_since >= self.poll_timeout:
                self._answer_poll(fallback)
            elif fallback.stream is not None and now - fallback.last_write >= HEARTBEAT_EVERY:
                fallback.stream.write(chunk(HEARTBEAT))
                fallback.last_write = now
            elif now - fallback.idle_since >= self.session_timeout:
                self.expire(fallback)

    def expire(self, fallback: FallbackSession) -> None:
        """Forget ``fallback`` and, unless the server closed it, its hub session."""
        fallback.forget_hub_session()
        self.forget(fallback)

    def forget(self, fallback: FallbackSession) -> None:
        """Remove ``fallback`` from the registry (idempotent)."""
        if self.sessions.get(fallback.key) is fallback:
            del self.sessions[fallback.key]
            self.counts[fallback.kind] -= 1
            self.ctx.fallback_sessions -= 1
            if self.cluster is not None:
                self.cluster.withdraw(fallback.key)

    def items(self, data: bytes) -> list[bytes]:
        """The payloads of the frames in ``data`` (one, or several a replay writes at once),
        each as a JSON string; a fan-out hands every session the same bytes, so they are
        encoded once."""
        if data is not self._last_frame:
            self._last_items = [orjson.dumps(p.decode()) for p in frame_payloads(data)]
            self._last_frame = data
        return self._last_items

    def soon(self, fallback: FallbackSession) -> None:
        """Answer ``fallback``'s poll at the end of this loop iteration (with everything
        written meanwhile)."""
        if not self._due:
            self.ctx.loop.call_soon(self._answer_due)
        if fallback not in self._due:
            self._due.append(fallback)

    def _answer_due(self) -> None:
        due, self._due = self._due, []
        for fallback in due:
            if fallback.poll is not None:
                self._answer_poll(fallback)

    def _answer_poll(self, fallback: FallbackSession) -> None:
        """Answer the waiting poll with what is queued (a heartbeat ``h`` when nothing)."""
        ready = fallback.poll
        assert ready is not None
        fallback.poll = None
        fallback.idle_since = self.ctx.loop.time()
        ready()

    # -- the route set -------------------------------------------------------------------

    def handles(self, path: str) -> bool:
        """Whether ``path`` is under the fallback prefix."""
        return path.startswith(self.prefix)

    def handle(self, request: Request, now: float) -> Response | Stream:
        """Answer one fallback request."""
        parts = request.path[len(self.prefix) :].split("/")
        if len(parts) != 4 or parts[3] not in ("xhr_streaming", "xhr", "xhr_send"):
            return _json(404, "Not found", ())
        app_key, server, session_id, kind = parts
        app = self.ctx.node.registry.by_key(app_key)
        origin = request.headers.get(b"origin")
        cors = self._cors(app.origin_allowed if app is not None else None, origin)
        if request.method == "OPTIONS":
            if origin is not None and not cors:
                return _json(403, "This origin is not allowed for the app", ())
            return Response(204, b"", headers=(*cors, *_PREFLIGHT))
        if request.method != "POST":
            return _json(405, "Use POST", cors)
        if not _SERVER.fullmatch(server) or not _SESSION.fullmatch(session_id):
            return _json(404, "Not a session path", cors)
        key = f"{app_key}/{server}/{session_id}"
        if self.ctx.debug:  # the session path stays out of the log
            known = "known" if key in self.sessions else "not held here"
            log.debug("fallback %s %s (%s)", request.method, kind, known)
        call = _Call(key, app_key, kind, request, origin, cors)
        return self._route(call, now, waited=False)

    def _route(self, call: _Call, now: float, waited: bool) -> Response | Stream:
        key, kind, cors = call.key, call.kind, call.cors
        fallback = self.sessions.get(key)
        cluster = self.cluster
        if fallback is None and cluster is not None:
            owner = cluster.owner(key)
            if owner is not None:
                return self._elsewhere(owner, call)
            if not waited:  # the client's request may outrun the owner's announcement

                def again() -> Response | Stream:
                    return self._route(call, self.ctx.loop.time(), True)

                return cluster.when_announced(key, again)
        if kind == "xhr_send":
            return self._send(fallback, call.request.body, cors, now)
        if fallback is None:
            return self._open(call, now)
        return self._receive(fallback, kind, cors, now)

    def _elsewhere(self, owner: str, call: _Call) -> Response | Stream:
        """A request for a session another node of the cluster holds."""
        assert self.cluster is not None
        key, kind, cors = call.key, call.kind, call.cors
        if kind == "xhr_send":
            items = self.items_of(call.request.body, None, cors)
            if isinstance(items, Response):
                return items
            self.cluster.forward_send(owner, key, items)
            return Response(204, b"", headers=(_NO_STORE, *cors))
        if kind == "xhr_streaming":
            return self.cluster.proxy_stream(owner, key, _stream_head(cors))

        def respond(data: bytes) -> Response:
            return Response(200, data or HEARTBEAT, _BODY_TYPE, (_NO_STORE, *cors))

        return self.cluster.proxy_poll(owner, key, respond)

    @staticmethod
    def _cors(
        allowed: Callable[[str | None], bool] | None, origin: bytes | None
    ) -> tuple[tuple[bytes, bytes], ...]:
        if origin is None or allowed is None or not allowed(origin.decode("latin-1")):
            return ()
        return ((b"Access-Control-Allow-Origin", origin), (b"Vary", b"Origin"))

    def _open(self, call: _Call, now: float) -> Response | Stream:
        """The first receive request of a session: the same checks as a WebSocket's."""
        key, app_key, kind, request, origin, cors = call
        ctx = self.ctx
        app = ctx.node.registry.by_key(app_key)
        transport = STREAMING if kind == "xhr_streaming" else POLLING
        if app is None:
            return self._refused(errors.app_not_found(app_key), cors)
        problem = protocol_error(query_value(request.target.partition("?")[2], "protocol"))
        if problem is not None:
            return self._refused(problem, cors)
        if ctx.websockets + ctx.fallback_sessions >= ctx.max_connections:
            ctx.over_capacity()
            return self._refused(errors.OVER_CAPACITY, cors)
        if ctx.stopping:
            return self._refused(errors.SERVER_SHUTTING_DOWN, cors)
        hub = ctx.node.hub(app)
        fallback = FallbackSession(self, key, hub, transport)
        session = hub.connect(
            fallback.write,
            fallback.close,
            origin.decode("latin-1") if origin is not None else None,
            now,
        )
        if session is None:  # refused by the app: the error and the close are queued
            return Response(200, OPEN + fallback.take(), _BODY_TYPE, (_NO_STORE, *cors))
        fallback.session = session
        self.sessions[key] = fallback
        if self.cluster is not None:
            self.cluster.announce(key)
        self.counts[transport] += 1
        ctx.fallback_sessions += 1
        if ctx.debug:
            log.debug("%s connected to app %s over %s", session.socket_id, app.id, transport)
        if kind == "xhr_streaming":
            return self._stream(fallback, cors, opening=True)
        fallback.opening = False  # the "o" goes in this answer
        return Response(200, OPEN + fallback.take(), _BODY_TYPE, (_NO_STORE, *cors))

    def _refused(self, err: PusherError, cors: tuple[tuple[bytes, bytes], ...]) -> Response:
        body = OPEN + messages_line([orjson.dumps(messages.error(err).decode())])
        body += close_line(err.code or 4200, err.message)
        return Response(200, body, _BODY_TYPE, (_NO_STORE, *cors))

    def _receive(
        self,
        fallback: FallbackSession,
        kind: str,
        cors: tuple[tuple[bytes, bytes], ...],
        now: float,
    ) -> Response | Stream:
        """A later receive request: it takes over from any still open."""
        fallback.touch()
        self.take_over(fallback)
        if kind == "xhr_streaming":
            return self._stream(fallback, cors, opening=False)
        if fallback.queue or fallback.closing is not None:
            fallback.idle_since = self.ctx.loop.time()
            return Response(200, fallback.take(), _BODY_TYPE, (_NO_STORE, *cors))

        def wait(ready: Callable[[], None]) -> None:
            self.wait_poll(fallback, ready)

        def answer() -> Response:
            body = fallback.take()
            return Response(200, body or HEARTBEAT, _BODY_TYPE, (_NO_STORE, *cors))

        def cancel() -> None:  # the client went away: what was queued stays queued
            if fallback.poll is not None:
                fallback.detach()

        return Response(200, b"", pending=Pending(wait, answer, cancel, pause_reading=False))

    def _stream(
        self, fallback: FallbackSession, cors: tuple[tuple[bytes, bytes], ...], opening: bool
    ) -> Stream:
        # Bound methods and a shared head, not closures: a stream lives as long as its
        # session, and closures cost about 400 bytes more per session (tracemalloc).
        fallback.opening = opening
        return Stream(_stream_head(cors), fallback.stream_opened, fallback.stream_closed)

    def _send(
        self,
        fallback: FallbackSession | None,
        body: bytes,
        cors: tuple[tuple[bytes, bytes], ...],
        now: float,
    ) -> Response:
        """Client messages, in the order the requests arrive."""
        if fallback is None or fallback.session is None or fallback.closing is not None:
            return _json(404, "Unknown or expired session", cors)
        items = self.items_of(body, fallback.hub.app.max_message_size, cors)
        if isinstance(items, Response):
            return items
        self.deliver(fallback, items)
        return Response(204, b"", headers=(_NO_STORE, *cors))

    @staticmethod
    def items_of(
        body: bytes, limit: int | None, cors: tuple[tuple[bytes, bytes], ...]
    ) -> list[str] | Response:
        """The messages of an ``xhr_send`` body, or the answer refusing it (larger than
        ``limit`` bytes, when a limit is given)."""
        try:
            items = orjson.loads(body)
        except orjson.JSONDecodeError:
            items = None
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            return _json(400, "The body must be a JSON array of message strings", cors)
        if limit is not None and any(len(text.encode()) > limit for text in items):
            return _json(413, f"A message is larger than {limit} bytes", cors)
        return items

    def deliver(self, fallback: FallbackSession, items: list[str]) -> None:
        """Hand client messages to the hub, in order (also those another node forwarded);
        the caller has checked them (:meth:`items_of`)."""
        session, hub = fallback.session, fallback.hub
        if session is None:
            return
        now = self.ctx.loop.time()
        session.touch(now)
        for text in items:
            if session.closed:
                break
            if self.ctx.debug:
                log.debug("%s <- %s", session.socket_id, text[:2000])
            hub.receive(session, text, now)

    def take_over(self, fallback: FallbackSession) -> None:
        """A new receive request arrived: end the stream or poll still open."""
        if fallback.stream is not None:
            old, fallback.stream = fallback.stream, None
            old.write(LAST_CHUNK)
            old.close()
        if fallback.poll is not None:
            self._answer_poll(fallback)

    def wait_poll(self, fallback: FallbackSession, ready: Callable[[], None]) -> None:
        """Let ``ready`` answer ``fallback``'s poll when something is queued (or it times out)."""
        fallback.poll = ready
        fallback.poll_since = self.ctx.loop.time()
        fallback.idle_since = math.inf


_PREFLIGHT = (
    (b"Access-Control-Allow-Methods", b"POST, OPTIONS"),
    (b"Access-Control-Allow-Headers", b"Content-Type"),
    (b"Access-Control-Max-Age", b"86400"),
)
