"""A Pusher connection over WebSocket: RFC 6455 frames in, the app's hub, frames out.

:func:`upgrade` answers a validated handshake and hands the socket over from the
:class:`~overtone.transport.http1.HttpConnection` that read it
(``transport.set_protocol``), so an idle WebSocket keeps nothing of HTTP: 10 000+ of these
objects live at once. The hub sees the connection only through its
:class:`~overtone.session.Session` (``write``, ``close``, ``touch``), the interface every
client transport meets the core through.
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

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
from overtone.session import Session, WriteFrame
from overtone.transport.context import ConnectionContext

log = logging.getLogger("overtone.connection")

CLOSE_WAIT = 2.0  # seconds to wait for the peer's close frame after ours


def upgrade(
    ctx: ConnectionContext,
    transport: asyncio.Transport,
    answer: bytes,
    target: str,
    key: str,
    origin: bytes | None,
) -> WebSocketConnection:
    """Take over ``transport`` after a valid handshake: write ``answer`` (the ``101``)
    and the first frame (``connection_established``, or the error refusing the
    connection) in one send, and return the connection now receiving its data."""
    conn = WebSocketConnection(ctx, transport)
    transport.set_protocol(conn)
    # The 101 and the first frame leave in one send() instead of two: the kernel work of a
    # send on loopback is a large part of a handshake's server CPU.
    corked = conn.corked = [answer]
    try:
        conn.open(target, key, origin)
    finally:
        conn.corked = None
        if ctx.debug:  # every frame is logged; the 101 before them is not one
            transport.write(corked.pop(0))
            ctx.debug_writer(transport.write)(b"".join(corked))
        else:
            transport.write(b"".join(corked))
    if conn.session is not None and not conn.closing:
        conn.session.write = conn.direct_write()
    return conn


class WebSocketConnection(asyncio.Protocol):
    """One upgraded connection: a session of one app's hub, or a refusal being closed."""

    __slots__ = ("closing", "corked", "ctx", "frames", "hub", "session", "timer", "transport")

    def __init__(self, ctx: ConnectionContext, transport: asyncio.Transport) -> None:
        self.ctx = ctx
        self.transport: asyncio.Transport | None = transport
        self.frames: FrameParser | None = None
        self.hub: Hub | None = None
        self.session: Session | None = None
        self.closing = False
        self.timer: asyncio.TimerHandle | None = None
        """The close-wait timer once our close frame is sent."""
        self.corked: list[bytes] | None = None
        """Bytes held back during the handshake, to leave in one send (see :func:`upgrade`)."""

    def open(self, target: str, key: str, origin: bytes | None) -> None:
        """Start the session: the app's checks, then the hub's session (or a refusal)."""
        ctx = self.ctx
        transport = self.transport
        assert transport is not None
        transport.set_write_buffer_limits(high=ctx.write_high_water)
        app = ctx.node.registry.by_key(key)
        self.frames = FrameParser(app.max_message_size if app is not None else 10_000)
        ctx.websockets += 1
        if app is None:
            self._fail(errors.app_not_found(key))
            return
        problem = protocol_error(query_value(target.partition("?")[2], "protocol"))
        if problem is not None:
            self._fail(problem)
            return
        if ctx.websockets + ctx.fallback_sessions > ctx.max_connections:  # counted already
            ctx.over_capacity()
            self._fail(errors.OVER_CAPACITY)
            return
        self.hub = ctx.node.hub(app)
        self.session = self.hub.connect(
            self._write,
            self._close,
            origin.decode("latin-1") if origin is not None else None,
            ctx.loop.time(),
        )
        if self.session is None:
            return
        if ctx.stopping:
            # Accepted just before the drain began: told to reconnect (4200) like every
            # other client, so pusher-js goes straight to another node or worker.
            self.hub.close_session(self.session, errors.SERVER_SHUTTING_DOWN)
            self.session = None
            return
        if ctx.debug:
            log.debug("%s connected to app %s", self.session.socket_id, app.id)

    # -- asyncio callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        if self.frames is not None:
            self.ctx.websockets -= 1
            self.frames = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.session is not None and self.hub is not None:
            self.hub.disconnect(self.session)
            self.session.write = _discard
        self.transport = None

    def data_received(self, data: bytes) -> None:
        frames = self.frames
        if frames is None:
            return
        try:
            events = frames.feed(data)
        except ProtocolViolation as violation:
            self._events(violation.events)
            self.ctx.protocol_closes[violation.close_code] += 1
            if not self.closing:
                self._drop_session()
                self._close(violation.close_code, violation.reason)
            return
        self._events(events)

    def pause_writing(self) -> None:
        if self.session is not None:
            self.session.write = self._guarded_write

    def resume_writing(self) -> None:
        if self.session is not None and self.transport is not None and not self.closing:
            self.session.write = self.direct_write()

    # -- frames --------------------------------------------------------------------------

    def direct_write(self) -> WriteFrame:
        """The unguarded ``write`` of the session (logging every frame with ``--debug``)."""
        transport = self.transport
        assert transport is not None
        return self.ctx.debug_writer(transport.write) if self.ctx.debug else transport.write

    def _events(self, events: list[Event]) -> None:
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
                self._close(1003, "Binary frames are not accepted; send JSON text")

    def _write(self, data: bytes) -> None:
        """Write ``data``, or hold it back while the handshake's answer is corked."""
        if self.corked is not None:
            self.corked.append(data)
        elif self.transport is not None:
            self.transport.write(data)

    def _fail(self, err: PusherError) -> None:
        self._write(encode_frame(messages.error(err)))
        self._close(err.code or 4200, err.message)

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

    def _close(self, code: int, reason: str) -> None:
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


def _discard(frame: bytes) -> None:
    """The ``write`` of a session whose connection is closing: frames are dropped."""
