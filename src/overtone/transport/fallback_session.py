"""One session of pusher-js's HTTP fallback: what the hub writes to it, queued or streamed as
the frame lines pusher-js reads (``o``, ``a[...]``, ``h``, ``c[code,"reason"]``; protocol.md
§9), and the receive request it answers now."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Protocol

import orjson

from overtone.hub import Hub
from overtone.routing import StreamWriter
from overtone.session import Session
from overtone.transport.context import ConnectionContext

log = logging.getLogger("overtone.fallback")

OPEN = b"o\n"
HEARTBEAT = b"h\n"
LAST_CHUNK = b"0\r\n\r\n"


def close_line(code: int, reason: str) -> bytes:
    """The ``c[code,"reason"]`` line that closes a session."""
    return b"c" + orjson.dumps([code, reason]) + b"\n"


def messages_line(items: list[bytes]) -> bytes:
    """One ``a[...]`` line carrying ``items`` (each a Pusher frame as a JSON string)."""
    return b"a[" + b",".join(items) + b"]\n"


def chunk(data: bytes) -> bytes:
    """``data`` as one chunk of a chunked response."""
    return b"%x\r\n%s\r\n" % (len(data), data)


class Registry(Protocol):
    """What a session needs of the registry that holds it
    (:class:`~overtone.transport.fallback.FallbackSessions`)."""

    ctx: ConnectionContext
    max_buffer: int

    def items(self, data: bytes) -> list[bytes]:
        """The payloads of the frames in ``data``, each as a JSON string."""

    def soon(self, fallback: FallbackSession) -> None:
        """Answer ``fallback``'s waiting poll at the end of this loop iteration."""

    def forget(self, fallback: FallbackSession) -> None:
        """Remove ``fallback`` from the registry."""


class FallbackSession:
    """One pusher-js HTTP session: the hub's session, what waits for the client, and the
    receive request currently open (a stream, or a poll)."""

    __slots__ = (
        "closing",
        "hub",
        "idle_since",
        "key",
        "kind",
        "last_write",
        "opening",
        "poll",
        "poll_since",
        "queue",
        "queued",
        "registry",
        "session",
        "stream",
    )

    def __init__(self, registry: Registry, key: str, hub: Hub, kind: str) -> None:
        self.registry = registry
        self.key = key
        self.hub = hub
        self.kind = kind
        self.session: Session | None = None
        self.queue: list[bytes] = []
        """Messages not yet sent, each the Pusher frame as a JSON string."""
        self.queued = 0
        self.closing: bytes | None = None
        """The ``c[code,"reason"]`` line once the server closed the session."""
        self.stream: StreamWriter | None = None
        self.poll: Callable[[], None] | None = None
        """The ``ready`` of the poll waiting for messages."""
        self.poll_since = 0.0
        self.idle_since = registry.ctx.loop.time()
        """When the last receive request ended (``math.inf`` while one is open)."""
        self.last_write = self.idle_since
        self.opening = True
        """The next stream is the session's first: it starts with ``o``."""

    # -- the hub's side (Session.write and Session.close) --------------------------------

    def write(self, frames: bytes) -> None:
        """Queue or send the payloads of one or more frames."""
        if self.closing is not None:
            return
        items = self.registry.items(frames)
        size = sum(len(item) for item in items) if len(items) > 1 else len(items[0])
        stream = self.stream
        if stream is not None:
            if stream.buffered() + size > self.registry.max_buffer:
                self.drop("it stopped reading its stream")
                return
            if not self.queue:  # the usual case: one chunk, nothing to join
                stream.write(chunk(messages_line(items)))
                self.last_write = self.registry.ctx.loop.time()
                return
        self.queued += size
        if self.queued > self.registry.max_buffer:
            self.drop("it stopped polling")
            return
        self.queue.extend(items)
        if stream is not None:
            self.flush_stream()
        elif self.poll is not None:
            self.registry.soon(self)

    def close(self, code: int, reason: str) -> None:
        """The server ends the session: the close frame goes out with what is queued."""
        if self.closing is not None:
            return
        self.closing = close_line(code, reason)
        if self.stream is not None:
            self.flush_stream()
        elif self.poll is not None:
            self.registry.soon(self)

    def drop(self, why: str) -> None:
        """Forget a client that does not read (like a WebSocket past its buffer bound).

        Not ``hub.disconnect()`` at once: this may run inside a fan-out loop over one of
        the session's channels; the hub forgets the session at the end of the iteration.
        The close frame waits for the client's next receive request (or the session
        timeout).
        """
        log.warning(
            "closing %s (%s): %s",
            self.session.socket_id if self.session else "?",
            self.kind,
            why,
        )
        self.queue.clear()
        self.queued = 0
        self.closing = close_line(4100, "Over capacity: the client does not read")
        if self.stream is not None:
            self.stream.close()
        self.registry.ctx.loop.call_soon(self.forget_hub_session)

    def forget_hub_session(self) -> None:
        """Make the hub forget the session (idempotent): channels, presence, counts."""
        if self.session is not None and not self.session.closed:
            self.hub.disconnect(self.session)

    # -- receive requests ----------------------------------------------------------------

    def take(self) -> bytes:
        """What the client has not received yet, as frame lines (the close last)."""
        lines = messages_line(self.queue) if self.queue else b""
        self.queue = []
        self.queued = 0
        if self.closing is not None:
            lines += self.closing
            self.registry.forget(self)
        return lines

    def flush_stream(self) -> None:
        """Send what is queued on the open stream; end it after a close frame."""
        stream = self.stream
        assert stream is not None
        data = self.take()
        if data:
            stream.write(chunk(data))
            self.last_write = self.registry.ctx.loop.time()
        if self.closing is not None:
            stream.write(LAST_CHUNK)
            stream.close()

    def stream_opened(self, writer: StreamWriter) -> None:
        """A streaming receive request is open on ``writer``: send what waits."""
        self.stream = writer
        self.idle_since = math.inf
        if self.opening:
            self.opening = False
            writer.write(chunk(OPEN))
        self.last_write = self.registry.ctx.loop.time()
        self.flush_stream()

    def stream_closed(self, writer: StreamWriter) -> None:
        """A streaming receive request ended."""
        if self.stream is writer:
            self.detach()

    def detach(self) -> None:
        """The receive request ended: the client has ``session_timeout`` to send the next."""
        self.stream = None
        self.poll = None
        self.idle_since = self.registry.ctx.loop.time()

    def touch(self) -> None:
        """A request of the client arrived: it is alive."""
        if self.session is not None:
            self.session.touch(self.registry.ctx.loop.time())
