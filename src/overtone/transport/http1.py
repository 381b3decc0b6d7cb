"""One TCP connection speaking HTTP/1.1 (httptools): requests to the route sets, or a
WebSocket handshake that hands the socket to :mod:`overtone.transport.websocket`.

The protocol object stays small (``__slots__``) and enforces the limits of ARCHITECTURE.md
(header size and count, body size, time-outs) before anything reaches a route set. Requests
are answered in order: a :class:`~overtone.routing.Pending` answer holds back the requests
pipelined behind it, and a :class:`~overtone.routing.Stream` keeps the response open.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import cast

import httptools

from overtone.protocol.handshake import check_host, check_upgrade, response_101
from overtone.routing import Pending, Request, Response, Stream
from overtone.transport.context import ConnectionContext
from overtone.transport.http import error_response, response, revalidated
from overtone.transport.websocket import upgrade

log = logging.getLogger("overtone.connection")

LINGER = 2.0  # seconds to discard input after refusing a request mid-way
# ``HttpConnection.header_bytes`` counts bytes received while a request's header section is
# incomplete (>= 0); these two values mean no request is in progress, or its body is.
IDLE = -2
IN_BODY = -1


class _Abort(Exception):
    """Raised inside an httptools callback to stop parsing; the response is already sent."""


NOT_FOUND = Response(404, b'{"error":"Not found"}')
"""The answer when no route set takes a path (the server's last route set takes them all)."""


class HttpConnection(asyncio.Protocol):
    """An HTTP/1.1 connection (keep-alive, pipelining) that may become a WebSocket."""

    __slots__ = (
        "body",
        "closing",
        "ctx",
        "deadline",
        "header_bytes",
        "header_count",
        "header_size",
        "headers",
        "parser",
        "pending",
        "stream",
        "timer",
        "transport",
        "url",
        "waiting",
    )

    def __init__(self, ctx: ConnectionContext) -> None:
        self.ctx = ctx
        self.transport: asyncio.Transport | None = None
        self.parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.body = b""
        self.header_bytes = IDLE
        self.header_count = 0
        self.header_size = 0
        self.timer: asyncio.TimerHandle | None = None
        """The linger timer of a connection refused mid-request."""
        self.deadline = math.inf
        """Loop time at which the connection times out (swept by ``ctx.deadlines``;
        ``math.inf`` while it waits on a pending answer, streams, or closes)."""
        self.closing = False
        self.pending: Pending | None = None
        """The answer this connection waits for (see :meth:`_wait`)."""
        self.stream: Stream | None = None
        """Set while this connection's response stays open (see :meth:`_open_stream`)."""
        self.waiting: list[tuple[Request, bool]] | None = None
        """Requests that arrived while an earlier one waits for its answer (``None``: none
        is waiting)."""

    # -- asyncio callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.ctx.http.add(self)
        self._arm(self.ctx.settings.http_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.ctx.http.discard(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.stream is not None:
            stream, self.stream = self.stream, None
            stream.closed(self)
        if self.pending is not None:
            pending, self.pending = self.pending, None
            if pending.cancel is not None:
                pending.cancel()
        self.parser = None
        self.transport = None

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        if parser is None or self.closing:
            return
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgraded:
            transport = self.transport
            protocol = transport.get_protocol() if transport is not None else self
            rest = data[upgraded.args[0] :]
            if protocol is not self and rest:  # frames sent right behind the handshake
                cast(asyncio.Protocol, protocol).data_received(rest)
        except httptools.HttpParserCallbackError as exc:
            if not isinstance(exc.__context__, _Abort):
                log.exception("error while handling an HTTP request")
                self._refuse(500, "Internal server error")
        except httptools.HttpParserError as exc:
            self._refuse(400, f"Malformed HTTP request: {exc}")
            return
        if self.header_bytes >= 0 and not self.closing:  # header section still incomplete
            self.header_bytes += len(data)
            if self.header_bytes > self.ctx.settings.max_header_size:
                self._refuse(431, "Request header section is too large")

    # -- httptools callbacks -------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = {}
        self.body = b""
        self.header_count = 0
        self.header_size = 0
        self.header_bytes = 0
        self._arm(self.ctx.settings.http_timeout)

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self.headers
        ctx = self.ctx
        self.header_count += 1
        self.header_size += len(name) + len(value) + 4
        if self.header_count > ctx.max_headers:
            self._refuse(431, "Too many request headers")
            raise _Abort
        if self.header_size > ctx.max_header_size:
            self._refuse(431, "Request header section is too large")
            raise _Abort
        key = name.lower()
        if key in headers:
            if key == b"content-length":
                self._refuse(400, "Duplicate Content-Length header")
                raise _Abort
            headers[key] += b", " + value
        else:
            headers[key] = value

    def on_headers_complete(self) -> None:
        self.header_bytes = IN_BODY
        length = self.headers.get(b"content-length")
        if (
            length is not None
            and length.isdigit()
            and int(length) > self.ctx.settings.max_request_size
        ):
            self._refuse(
                413, f"Request body is larger than {self.ctx.settings.max_request_size} bytes"
            )
            raise _Abort

    def on_body(self, body: bytes) -> None:
        self.body += body
        if len(self.body) > self.ctx.settings.max_request_size:
            self._refuse(
                413, f"Request body is larger than {self.ctx.settings.max_request_size} bytes"
            )
            raise _Abort

    def on_message_complete(self) -> None:
        parser = self.parser
        transport = self.transport
        assert parser is not None and transport is not None
        target = self.url.decode("latin-1")
        path = target.partition("?")[0]
        ws_prefix = self.ctx.ws_prefix
        if path.startswith(ws_prefix) and path.count("/", len(ws_prefix)) == 0:
            self._handshake(parser, transport, target, path[len(ws_prefix) :])
            return
        if b"host" not in self.headers:
            missing_host = check_host(parser.get_http_version(), self.headers)
            if missing_host is not None:
                self._refuse(missing_host.status, missing_host.message)
                raise _Abort
        peer = transport.get_extra_info("peername")
        request = Request(
            parser.get_method().decode("latin-1"),
            target,
            path,
            self.headers,
            self.body,
            str(peer[0]) if isinstance(peer, tuple) and peer else None,
        )
        keep_alive = bool(parser.should_keep_alive()) and not self.ctx.stopping
        self.url = b""
        self.headers = {}
        self.body = b""
        self.header_bytes = IDLE
        if self.waiting is not None:  # an earlier pipelined request is still being answered
            self.waiting.append((request, keep_alive))
            return
        self._answer(request, keep_alive)

    def _answer(self, request: Request, keep_alive: bool) -> None:
        """Answer one request, or start waiting for what its answer needs."""
        path = request.path
        answer: Response | Stream = NOT_FOUND
        for routes in self.ctx.routes:
            if routes.handles(path):
                answer = routes.handle(request, self.ctx.loop.time())
                break
        if isinstance(answer, Stream):
            self._open_stream(answer)
        elif answer.pending is not None:
            self._wait(answer.pending, request, keep_alive)
        else:
            self._respond(request, answer, keep_alive)

    def _respond(self, request: Request, answer: Response, keep_alive: bool) -> None:
        transport = self.transport
        if transport is None or self.closing:
            return
        status, body = answer.status, answer.body
        if_none_match = request.headers.get(b"if-none-match")
        if if_none_match is not None:  # e.g. a browser revalidating the cached add-on
            status, body = revalidated(status, body, answer.headers, if_none_match)
        if request.method == "HEAD":
            body = b""
        transport.write(
            response(
                status,
                body,
                keep_alive=keep_alive,
                content_type=answer.content_type,
                extra_headers=answer.headers,
            )
        )
        if keep_alive:
            self._arm(self.ctx.settings.keepalive_timeout)
        else:
            self._finish_http()

    def _wait(self, pending: Pending, request: Request, keep_alive: bool) -> None:
        """Answer once ``pending`` is ready; later pipelined requests wait in order."""
        self.waiting = []
        self.deadline = math.inf
        self.pending = pending
        paused = pending.pause_reading and self.transport is not None
        if paused:
            assert self.transport is not None
            self.transport.pause_reading()

        def ready() -> None:
            if self.pending is not pending:  # cancelled: the connection is gone
                return
            self.pending = None
            if self.transport is None or self.closing:
                if pending.cancel is not None:
                    pending.cancel()
                return
            final = pending.answer()
            if isinstance(final, Stream):
                self.waiting = None
                self._open_stream(final)
                return
            self._respond(request, final, keep_alive)
            queued, self.waiting = self.waiting or [], None
            while queued and self.waiting is None and not self.closing:
                self._answer(*queued.pop(0))
            if self.waiting is not None:
                self.waiting[:0] = queued
            elif paused and self.transport is not None and not self.closing:
                self.transport.resume_reading()

        pending.wait(ready)

    def _open_stream(self, stream: Stream) -> None:
        """Write the head of a response that stays open and hand this connection to
        ``stream.opened`` as its writer; anything more the client sends is ignored."""
        transport = self.transport
        assert transport is not None
        transport.write(stream.head)
        self.deadline = math.inf
        self.parser = None
        self.stream = stream
        stream.opened(self)

    # -- the StreamWriter of an open stream ----------------------------------------------

    def write(self, data: bytes) -> None:
        """Send ``data`` on an open stream."""
        if self.transport is not None and not self.closing:
            self.transport.write(data)

    def buffered(self) -> int:
        """Bytes of an open stream not yet sent."""
        return self.transport.get_write_buffer_size() if self.transport is not None else 0

    def close(self) -> None:
        """End an open stream (``stream.closed`` follows with the connection's loss)."""
        self._finish_http()

    # -- the WebSocket handshake ---------------------------------------------------------

    def _handshake(
        self,
        parser: httptools.HttpRequestParser,
        transport: asyncio.Transport,
        target: str,
        key: str,
    ) -> None:
        """Answer an upgrade request: refused here, or handed to the WebSocket side."""
        outcome = check_upgrade(parser.get_method(), parser.get_http_version(), self.headers)
        if not isinstance(outcome, bytes):
            transport.write(
                error_response(outcome.status, outcome.message, extra_headers=outcome.extra_headers)
            )
            self._finish_http()
            raise _Abort
        origin = self.headers.get(b"origin")
        # Nothing of the HTTP side stays with a WebSocket (10 000+ of them live at once).
        self.ctx.http.discard(self)
        self.parser = None
        self.transport = None
        self.deadline = math.inf
        self.headers = {}
        self.url = b""
        upgrade(self.ctx, transport, response_101(outcome), target, key, origin)

    # -- HTTP helpers --------------------------------------------------------------------

    def _arm(self, delay: float) -> None:
        """Time the connection out ``delay`` seconds from now (HTTP only; see
        :mod:`overtone.transport.deadlines`)."""
        self.deadline = self.ctx.loop.time() + delay

    def timed_out(self) -> None:
        """Called by the sweep once :attr:`deadline` has passed: 408 mid-request, else
        close the idle kept-alive connection."""
        transport = self.transport
        if transport is None or self.closing:
            return
        if self.header_bytes != IDLE:
            self._refuse(408, "Request not completed in time")
        else:  # an idle kept-alive connection
            self.deadline = math.inf
            transport.close()

    def _refuse(self, status: int, message: str) -> None:
        if self.transport is not None and not self.closing:
            self.transport.write(error_response(status, message))
        self._finish_http(linger=True)

    def _finish_http(self, *, linger: bool = False) -> None:
        """Stop reading requests and close.

        With ``linger`` (a request refused before it was fully read), only our side is shut
        and further input is discarded for a moment, so that the peer reads the error
        response instead of a connection reset.
        """
        self.closing = True
        self.parser = None
        self.deadline = math.inf
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        transport = self.transport
        if transport is None:
            return
        if linger and transport.can_write_eof():
            transport.write_eof()
            self.timer = self.ctx.loop.call_later(LINGER, transport.close)
        else:
            transport.close()

    def close_if_idle(self) -> bool:
        """Close a kept-alive HTTP connection with no request in progress (shutdown)."""
        if not self.closing and self.header_bytes == IDLE:
            self._finish_http()
            return True
        return False
