"""One TCP connection: HTTP/1.1 requests (httptools) until it upgrades to a WebSocket.

The protocol object stays small (``__slots__``; the HTTP parser is dropped after the
upgrade) because 10 000+ of them live at once. Everything above bytes is delegated: the
handshake to :mod:`overtone.protocol.handshake`, frames to
:mod:`overtone.protocol.frames`, Pusher messages to the app's :class:`~overtone.hub.Hub`,
HTTP API requests to :class:`~overtone.http.api.Api`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import TYPE_CHECKING, cast

import httptools

from overtone.dashboard.access import client_address
from overtone.dashboard.service import FEED_HEAD, DashboardService, Feed
from overtone.http.api import Deferred
from overtone.hub import Hub
from overtone.protocol import errors, messages
from overtone.protocol.connect import protocol_error, query_value
from overtone.protocol.errors import PusherError
from overtone.protocol.frames import (
    OP_PONG,
    CloseReceived,
    Event,
    FrameParser,
    Ping,
    Pong,
    ProtocolViolation,
    TextMessage,
    encode_close,
    encode_frame,
)
from overtone.protocol.handshake import check_host, check_upgrade, response_101
from overtone.session import Session, WriteFrame
from overtone.transport.http import error_response, response, revalidated
from overtone.transport.ops import route_kind

if TYPE_CHECKING:
    from overtone.transport.server import ServerContext

log = logging.getLogger("overtone.connection")

CLOSE_WAIT = 2.0  # seconds to wait for the peer's close frame after ours
LINGER = 2.0  # seconds to discard input after refusing a request mid-way
# ``Connection.header_bytes`` counts bytes received while a request's header section is
# incomplete (>= 0); these two values mean no request is in progress, or its body is.
IDLE = -2
IN_BODY = -1


NO_HEADERS: dict[bytes, bytes] = {}
"""The headers of a connection past its upgrade (shared: never written to)."""


class _Abort(Exception):
    """Raised inside an httptools callback to stop parsing; the response is already sent."""


Request = tuple[str, str, str, bytes, bool, dict[bytes, bytes]]
"""A complete HTTP request as :meth:`Connection._answer` takes it: method, target, path,
body, keep-alive and the headers (names lower-cased)."""


class Connection(asyncio.Protocol):
    """An HTTP connection that may become a Pusher WebSocket connection."""

    __slots__ = (
        "body",
        "closing",
        "corked",
        "ctx",
        "deadline",
        "feed",
        "frames",
        "header_bytes",
        "header_count",
        "header_size",
        "headers",
        "hub",
        "parser",
        "session",
        "timer",
        "transport",
        "url",
        "waiting",
    )

    def __init__(self, ctx: ServerContext) -> None:
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
        """The close-wait or linger timer of a closing connection."""
        self.deadline = math.inf
        """Loop time at which an HTTP connection times out (swept by ``ctx.deadlines``;
        ``math.inf`` while it waits on the store, streams a feed, or closes)."""
        self.frames: FrameParser | None = None
        self.hub: Hub | None = None
        self.session: Session | None = None
        self.closing = False
        self.corked: list[bytes] | None = None
        """Bytes held back during the handshake, to leave in one send (see :meth:`_write`)."""
        self.feed: Feed | None = None
        """Set while this connection streams the dashboard's feed."""
        self.waiting: list[Request] | None = None
        """Requests that arrived while an earlier one waits for its answer (``None``: none
        is waiting)."""

    # -- asyncio callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.ctx.http.add(self)
        self._arm(self.ctx.settings.http_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.frames is not None:
            self.ctx.websockets -= 1
        else:
            self.ctx.http.discard(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.session is not None and self.hub is not None:
            self.hub.disconnect(self.session)
            self.session.write = _discard
        if self.feed is not None and self.ctx.dashboard is not None:
            self.ctx.dashboard.close_feed(self.feed)
            self.feed = None
        self.parser = None

    def data_received(self, data: bytes) -> None:
        if self.frames is not None:
            self._websocket_data(data)
            return
        parser = self.parser
        if parser is None or self.closing:
            return
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            if self.frames is not None:
                rest = data[upgrade.args[0] :]
                if rest:
                    self._websocket_data(rest)
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

    def pause_writing(self) -> None:
        if self.session is not None:
            self.session.write = self._guarded_write

    def resume_writing(self) -> None:
        if self.session is not None and self.transport is not None and not self.closing:
            self.session.write = self._direct_write(self.transport)

    def _direct_write(self, transport: asyncio.Transport) -> WriteFrame:
        """The unguarded ``write`` of the session (logging every frame with ``--debug``)."""
        return self.ctx.debug_writer(transport.write) if self.ctx.debug else transport.write

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
        method = parser.get_method().decode("latin-1")
        target = self.url.decode("latin-1")
        path = target.partition("?")[0]
        ws_prefix = self.ctx.ws_prefix
        if path.startswith(ws_prefix) and path.count("/", len(ws_prefix)) == 0:
            self._handshake(parser, target, path[len(ws_prefix) :])
            return
        if b"host" not in self.headers:
            missing_host = check_host(parser.get_http_version(), self.headers)
            if missing_host is not None:
                self._refuse(missing_host.status, missing_host.message)
                raise _Abort
        keep_alive = bool(parser.should_keep_alive()) and not self.ctx.stopping
        request = (method, target, path, self.body, keep_alive, self.headers)
        self.url = b""
        self.headers = {}
        self.body = b""
        self.header_bytes = IDLE
        if self.waiting is not None:  # an earlier pipelined request is still being answered
            self.waiting.append(request)
            return
        self._answer(*request)

    def _answer(
        self,
        method: str,
        target: str,
        path: str,
        body: bytes,
        keep_alive: bool,
        headers: dict[bytes, bytes],
    ) -> None:
        """Answer one HTTP request, or start waiting for what its answer needs."""
        ops = self.ctx.ops
        if ops is not None and ops.handles(path):
            status, content, content_type = ops.handle(path, target, headers.get(b"authorization"))
            self._respond(method, status, content, content_type, (), keep_alive)
            return
        dashboard = self.ctx.dashboard
        if dashboard is not None and dashboard.routes.handles(path):
            self._dashboard(dashboard, method, target, body, keep_alive, headers)
            return
        started = time.perf_counter()
        result = self.ctx.api.handle(method, target, body, self.ctx.loop.time(), time.time())
        if result.deferred is not None:
            self._defer(result.deferred, method, path, keep_alive, started)
            return
        self.ctx.latency.observe(route_kind(path), time.perf_counter() - started, result.status)
        status, content = result.status, result.body
        if_none_match = headers.get(b"if-none-match")
        if if_none_match is not None:  # e.g. a browser revalidating the cached add-on
            status, content = revalidated(status, content, result.headers, if_none_match)
        self._respond(method, status, content, result.content_type, result.headers, keep_alive)

    def _dashboard(
        self,
        dashboard: DashboardService,
        method: str,
        target: str,
        body: bytes,
        keep_alive: bool,
        headers: dict[bytes, bytes],
    ) -> None:
        """Answer a request under ``{path}/dashboard``, or start streaming its feed."""
        transport = self.transport
        assert transport is not None
        peer = transport.get_extra_info("peername")
        address = client_address(
            str(peer[0]) if isinstance(peer, tuple) and peer else None,
            headers.get(b"x-forwarded-for"),
        )
        answer = dashboard.routes.handle(
            method, target, headers, body, address, self.ctx.loop.time()
        )
        if isinstance(answer, str):  # FEED: this response stays open
            transport.write(FEED_HEAD)
            self.deadline = math.inf
            self.parser = None  # anything more the client sends is ignored
            self.feed = Feed(transport.write, transport.get_write_buffer_size, self._finish_http)
            dashboard.open_feed(self.feed)
            return
        status, content = revalidated(
            answer.status, answer.body, answer.headers, headers.get(b"if-none-match")
        )
        self._respond(method, status, content, answer.content_type, answer.headers, keep_alive)

    def _respond(
        self,
        method: str,
        status: int,
        body: bytes,
        content_type: bytes,
        extra: tuple[tuple[bytes, bytes], ...],
        keep_alive: bool,
    ) -> None:
        transport = self.transport
        if transport is None or self.closing:
            return
        if method == "HEAD":
            body = b""
        transport.write(
            response(
                status, body, keep_alive=keep_alive, content_type=content_type, extra_headers=extra
            )
        )
        if keep_alive:
            self._arm(self.ctx.settings.keepalive_timeout)
        else:
            self._finish_http()

    def _defer(
        self, deferred: Deferred, method: str, path: str, keep_alive: bool, started: float
    ) -> None:
        """Answer once the stream the request reads has been loaded from the shared store;
        later pipelined requests wait in order (reading pauses meanwhile)."""
        self.waiting = []
        self.deadline = math.inf
        if self.transport is not None:
            self.transport.pause_reading()

        def done() -> None:
            result = deferred.answer()
            self.ctx.latency.observe(route_kind(path), time.perf_counter() - started, result.status)
            self._respond(
                method, result.status, result.body, result.content_type, result.headers, keep_alive
            )
            queued, self.waiting = self.waiting or [], None
            while queued and self.waiting is None and not self.closing:
                self._answer(*queued.pop(0))
            if self.waiting is not None:
                self.waiting[:0] = queued
            elif self.transport is not None and not self.closing:
                self.transport.resume_reading()

        deferred.hub.when_loaded(deferred.channel, done)

    # -- WebSocket -----------------------------------------------------------------------

    def _handshake(self, parser: httptools.HttpRequestParser, target: str, key: str) -> None:
        transport = self.transport
        assert transport is not None
        outcome = check_upgrade(parser.get_method(), parser.get_http_version(), self.headers)
        if not isinstance(outcome, bytes):
            transport.write(
                error_response(outcome.status, outcome.message, extra_headers=outcome.extra_headers)
            )
            self._finish_http()
            raise _Abort
        # The 101 and the first frame (connection_established, or the error that refuses
        # the connection) leave in one send() instead of two: the kernel work of a send on
        # loopback is a large part of a handshake's server CPU.
        self.corked = [response_101(outcome)]
        try:
            self._open(transport, target, key)
        finally:
            answer, self.corked = self.corked, None
            if self.ctx.debug:  # every frame is logged; the 101 before them is not one
                transport.write(answer.pop(0))
                self._direct_write(transport)(b"".join(answer))
            else:
                transport.write(b"".join(answer))
        if self.session is not None and not self.closing:
            self.session.write = self._direct_write(transport)

    def _open(self, transport: asyncio.Transport, target: str, key: str) -> None:
        """Start the WebSocket: the app's checks, then the hub's session (or a refusal)."""
        origin = self.headers.get(b"origin")
        query = target.partition("?")[2]
        # Nothing of the HTTP request stays with a WebSocket (10 000+ of them live at once).
        self.headers = NO_HEADERS
        self.url = b""
        self.parser = None
        transport.set_write_buffer_limits(high=self.ctx.write_high_water)
        app = self.ctx.node.registry.by_key(key)
        self.frames = FrameParser(app.max_message_size if app is not None else 10_000)
        self.ctx.http.discard(self)
        self.ctx.websockets += 1
        if app is None:
            self._fail(errors.app_not_found(key))
            return
        problem = protocol_error(query_value(query, "protocol"))
        if problem is not None:
            self._fail(problem)
            return
        if self.ctx.websockets > self.ctx.max_connections:  # this one is counted already
            self.ctx.over_capacity()
            self._fail(errors.OVER_CAPACITY)
            return
        self.hub = self.ctx.node.hub(app)
        self.session = self.hub.connect(
            self._write,
            self._close_websocket,
            origin.decode("latin-1") if origin is not None else None,
            self.ctx.loop.time(),
        )
        if self.session is None:
            return
        if self.ctx.stopping:
            # Accepted just before the drain began: told to reconnect (4200) like every
            # other client, so pusher-js goes straight to another node or worker.
            self.hub.close_session(self.session, errors.SERVER_SHUTTING_DOWN)
            self.session = None
            return
        if self.ctx.debug:
            log.debug("%s connected to app %s", self.session.socket_id, app.id)

    def _write(self, data: bytes) -> None:
        """Write ``data``, or hold it back while the handshake's answer is corked."""
        if self.corked is not None:
            self.corked.append(data)
        elif self.transport is not None:
            self.transport.write(data)

    def _fail(self, err: PusherError) -> None:
        self._write(encode_frame(messages.error(err)))
        self._close_websocket(err.code or 4200, err.message)

    def _websocket_data(self, data: bytes) -> None:
        frames = self.frames
        assert frames is not None
        try:
            events = frames.feed(data)
        except ProtocolViolation as violation:
            self._websocket_events(violation.events)
            self.ctx.protocol_closes[violation.close_code] += 1
            if not self.closing:
                self._drop_session()
                self._close_websocket(violation.close_code, violation.reason)
            return
        self._websocket_events(events)

    def _websocket_events(self, events: list[Event]) -> None:
        session = self.session
        hub = self.hub
        now = self.ctx.loop.time()
        for event in events:
            if session is None or hub is None or session.closed:
                if isinstance(event, CloseReceived):
                    self._close_received(event)
                continue
            if type(event) is TextMessage:
                if self.ctx.debug:
                    log.debug("%s <- %s", session.socket_id, event.text[:2000])
                hub.receive(session, event.text, now)
            elif type(event) is Ping:
                session.touch(now)
                session.write(encode_frame(event.payload, OP_PONG))
            elif type(event) is Pong:
                session.touch(now)
            elif isinstance(event, CloseReceived):
                self._close_received(event)
            else:  # a binary message
                self.ctx.protocol_closes[1003] += 1
                self._drop_session()
                self._close_websocket(1003, "Binary frames are not accepted; send JSON text")

    def _close_received(self, event: CloseReceived) -> None:
        transport = self.transport
        if transport is None:
            return
        self._drop_session()
        if not self.closing:
            self.closing = True
            transport.write(encode_close(event.code or 1000))
        transport.close()

    def _drop_session(self) -> None:
        if self.session is not None and self.hub is not None:
            self.hub.disconnect(self.session)

    def _close_websocket(self, code: int, reason: str) -> None:
        """Send a close frame, then close the TCP connection when the peer answers."""
        transport = self.transport
        if transport is None or self.closing:
            return
        self.closing = True
        if self.session is not None:
            self.session.write = _discard
        self._write(encode_close(code, reason))
        self.timer = self.ctx.loop.call_later(CLOSE_WAIT, transport.abort)

    def _guarded_write(self, frame: bytes) -> None:
        """``write`` while the peer is slow: drop it once its buffer passes the bound."""
        transport = self.transport
        if transport is None or self.closing:
            return
        if transport.get_write_buffer_size() + len(frame) > self.ctx.settings.max_write_buffer:
            session = self.session
            log.warning(
                "closing %s: it stopped reading (over %d bytes buffered)",
                session.socket_id if session else "?",
                self.ctx.settings.max_write_buffer,
            )
            if session is not None:
                # Not hub.disconnect(): we may be inside a fan-out loop over this channel.
                # abort() schedules connection_lost, which forgets the session.
                session.write = _discard
            self.closing = True
            transport.abort()
            return
        transport.write(frame)

    # -- HTTP helpers --------------------------------------------------------------------

    def _arm(self, delay: float) -> None:
        """Time the connection out ``delay`` seconds from now (HTTP only; see
        :mod:`overtone.transport.deadlines`)."""
        self.deadline = self.ctx.loop.time() + delay

    def timed_out(self) -> None:
        """Called by the sweep once :attr:`deadline` has passed: 408 mid-request, else
        close the idle kept-alive connection."""
        transport = self.transport
        if transport is None or self.frames is not None or self.closing:
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

    def close_http_if_idle(self) -> bool:
        """Close a kept-alive HTTP connection with no request in progress (shutdown)."""
        if self.frames is None and not self.closing and self.header_bytes == IDLE:
            self._finish_http()
            return True
        return False


def _discard(frame: bytes) -> None:
    """The ``write`` of a session whose connection is closing: frames are dropped."""
