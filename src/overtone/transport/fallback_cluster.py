"""HTTP fallback sessions across a cluster: each request of a session reaches the session,
whichever node the load balancer sent it to.

The node that opens a session owns it and tells the others (``own``/``gone``, again to a
node that joins). A node that gets a request for another node's session forwards it through
the cluster's broker: client messages (``send``) as they are, and a receive request as a
proxy (``recv``): the owner answers it with the same bytes it would write to a local
response (``data``, chunk by chunk for a stream, once for a poll), and the proxy writes
them to its client. When the proxy's client goes away the owner is told (``drop``); when a
node is gone, the proxies to it end their responses (pusher-js reconnects).

A request for a session no node has announced yet waits a moment for the announcement
(:data:`ANNOUNCE_WAIT`), since the client's next request may outrun it, before the session
is taken for a new one (a receive request) or unknown (a send).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from overtone.routing import Pending, Response, Stream, StreamWriter
from overtone.transport.context import ConnectionContext
from overtone.transport.fallback_session import HEARTBEAT, LAST_CHUNK, FallbackSession

log = logging.getLogger("overtone.fallback")

ANNOUNCE_WAIT = 0.15
"""Seconds a request for a session nobody has announced waits for its announcement."""


class Sessions(Protocol):
    """What the cluster side needs of the registry
    (:class:`~overtone.transport.fallback.FallbackSessions`)."""

    ctx: ConnectionContext

    @property
    def sessions(self) -> Mapping[str, FallbackSession]:
        """The sessions this node holds, by key."""

    def deliver(self, fallback: FallbackSession, items: list[str]) -> None:
        """Hand client messages to the hub, in order."""

    def take_over(self, fallback: FallbackSession) -> None:
        """End the stream or poll still open for ``fallback``."""

    def wait_poll(self, fallback: FallbackSession, ready: Callable[[], None]) -> None:
        """Let ``ready`` answer ``fallback``'s poll."""


class RemoteStream:
    """The owner's side of a stream proxied by another node: what the session writes to it
    goes to that node."""

    __slots__ = ("link", "node", "rid")

    def __init__(self, link: FallbackCluster, node: str, rid: str) -> None:
        self.link, self.node, self.rid = link, node, rid

    def write(self, data: bytes) -> None:
        self.link.send({"k": "data", "to": self.node, "r": self.rid, "d": data.decode()})

    def buffered(self) -> int:
        return 0  # the proxy's socket is out of sight; the session's queue bound still holds

    def close(self) -> None:
        self.link.send({"k": "data", "to": self.node, "r": self.rid, "d": "", "end": True})


class RemotePoll:
    """The owner's side of a poll proxied by another node: answers it through the broker
    with what is queued (a heartbeat when nothing)."""

    __slots__ = ("fallback", "link", "node", "rid")

    def __init__(self, link: FallbackCluster, node: str, rid: str, fallback: FallbackSession):
        self.link, self.node, self.rid, self.fallback = link, node, rid, fallback

    def __call__(self) -> None:
        body = self.fallback.take() or HEARTBEAT
        self.link.send(
            {"k": "data", "to": self.node, "r": self.rid, "d": body.decode(), "end": True}
        )


class StreamProxy:
    """A streaming response on this node that carries another node's session."""

    __slots__ = ("ended", "writer")

    def __init__(self, writer: StreamWriter) -> None:
        self.writer = writer
        self.ended = False
        """The owner sent the response's last chunk."""


class FallbackCluster:
    """This node's side of the fallback across the cluster (see the module docstring)."""

    def __init__(
        self, registry: Sessions, node_id: str, send: Callable[[dict[str, Any]], None]
    ) -> None:
        self.registry = registry
        self.node_id = node_id
        self._send = send
        self.owners: dict[str, str] = {}
        """Session key -> the node that holds it (other nodes only)."""
        self.proxies: dict[str, StreamProxy | Callable[[bytes], None]] = {}
        """Receive requests proxied from here: id -> the response's writer, or the waiting
        poll's answer."""
        self.proxied_to: dict[str, str] = {}
        """Proxy id -> the owner it waits on."""
        self.waiting: dict[str, list[Callable[[], None]]] = {}
        """Session key -> requests waiting for its announcement."""
        self._ids = itertools.count(1)

    def send(self, message: dict[str, Any]) -> None:
        self._send(message)

    # -- this node's sessions ------------------------------------------------------------

    def announce(self, key: str) -> None:
        """A session opened here."""
        self.send({"k": "own", "s": key})

    def withdraw(self, key: str) -> None:
        """A session opened here is gone."""
        self.send({"k": "gone", "s": key})

    def node_changed(self, node: str, joined: bool) -> None:
        """A node joined (tell it our sessions) or is gone (forget its sessions, end the
        responses proxied to it)."""
        if joined:
            for key in self.registry.sessions:
                self.announce(key)
            return
        for key in [k for k, owner in self.owners.items() if owner == node]:
            del self.owners[key]
        for rid in [r for r, owner in self.proxied_to.items() if owner == node]:
            self._end_proxy(rid, b"")

    # -- requests for sessions held elsewhere --------------------------------------------

    def owner(self, key: str) -> str | None:
        return self.owners.get(key)

    def when_announced(self, key: str, then: Callable[[], Response | Stream]) -> Response:
        """Answer with ``then()`` once ``key`` is announced, or after :data:`ANNOUNCE_WAIT`."""
        loop = self.registry.ctx.loop
        state: dict[str, Any] = {}

        def wait(ready: Callable[[], None]) -> None:
            state["ready"] = ready
            self.waiting.setdefault(key, []).append(ready)
            state["timer"] = loop.call_later(ANNOUNCE_WAIT, self._announced, key, ready)

        def cancel() -> None:
            timer = state.get("timer")
            if timer is not None:
                timer.cancel()
            ready = state.get("ready")
            if ready is not None and ready in self.waiting.get(key, []):
                self.waiting[key].remove(ready)

        return Response(200, b"", pending=Pending(wait, then, cancel, pause_reading=False))

    def _announced(self, key: str, only: Callable[[], None] | None = None) -> None:
        waiting = self.waiting.get(key, [])
        for ready in list(waiting):
            if only is None or ready is only:
                waiting.remove(ready)
                ready()
        if not waiting:
            self.waiting.pop(key, None)

    def forward_send(self, owner: str, key: str, items: list[str]) -> None:
        self.send({"k": "send", "to": owner, "s": key, "m": items})

    def proxy_stream(self, owner: str, key: str, head: bytes) -> Stream:
        """A streaming receive request for ``owner``'s session, answered through the cluster."""
        rid = f"{self.node_id}#{next(self._ids)}"

        def opened(writer: StreamWriter) -> None:
            self.proxies[rid] = StreamProxy(writer)
            self.proxied_to[rid] = owner
            self.send({"k": "recv", "to": owner, "s": key, "r": rid, "kind": "xhr_streaming"})

        def closed(writer: StreamWriter) -> None:
            if self.proxies.pop(rid, None) is not None:
                self.proxied_to.pop(rid, None)
                self.send({"k": "drop", "to": owner, "s": key, "r": rid})

        return Stream(head, opened, closed)

    def proxy_poll(self, owner: str, key: str, respond: Callable[[bytes], Response]) -> Response:
        """A polling receive request for ``owner``'s session, answered through the cluster."""
        rid = f"{self.node_id}#{next(self._ids)}"
        body: list[bytes] = []

        def wait(ready: Callable[[], None]) -> None:
            def arrived(data: bytes) -> None:
                body.append(data)
                ready()

            self.proxies[rid] = arrived
            self.proxied_to[rid] = owner
            self.send({"k": "recv", "to": owner, "s": key, "r": rid, "kind": "xhr"})

        def cancel() -> None:
            if self.proxies.pop(rid, None) is not None:
                self.proxied_to.pop(rid, None)
                self.send({"k": "drop", "to": owner, "s": key, "r": rid})

        return Response(
            200,
            b"",
            pending=Pending(wait, lambda: respond(b"".join(body)), cancel, pause_reading=False),
        )

    def _end_proxy(self, rid: str, data: bytes) -> None:
        """End a proxied receive request: a poll with ``data``, a stream with its end."""
        if rid in self.proxies:
            self._data(rid, data, end=True)

    # -- messages from the other nodes ---------------------------------------------------

    def receive(self, sender: str, message: dict[str, Any]) -> None:
        """Apply one message of another node (the ones addressed elsewhere are ignored)."""
        kind, key = message.get("k"), message.get("s")
        if kind == "own" and isinstance(key, str):
            self.owners[key] = sender
            self._announced(key)
            return
        if kind == "gone" and isinstance(key, str):
            if self.owners.get(key) == sender:
                del self.owners[key]
            return
        if message.get("to") != self.node_id:
            return
        rid = message.get("r")
        if kind == "data" and isinstance(rid, str):
            self._data(rid, str(message.get("d", "")).encode(), bool(message.get("end")))
        elif kind == "send" and isinstance(key, str):
            self._apply_send(key, message.get("m"))
        elif kind == "recv" and isinstance(key, str) and isinstance(rid, str):
            self._serve(sender, key, rid, str(message.get("kind")))
        elif kind == "drop" and isinstance(key, str) and isinstance(rid, str):
            fallback = self.registry.sessions.get(key)
            stream = fallback.stream if fallback is not None else None
            if fallback is None:
                return
            poll = fallback.poll
            if (isinstance(stream, RemoteStream) and stream.rid == rid) or (
                isinstance(poll, RemotePoll) and poll.rid == rid
            ):
                fallback.detach()

    def _data(self, rid: str, data: bytes, end: bool) -> None:
        target = self.proxies.get(rid)
        if target is None:
            return
        if isinstance(target, StreamProxy):
            if data:
                target.writer.write(data)
                target.ended = target.ended or data.endswith(LAST_CHUNK)
            if end:
                self.proxies.pop(rid, None)
                self.proxied_to.pop(rid, None)
                if not target.ended:
                    target.writer.write(LAST_CHUNK)
                target.writer.close()
            return
        self.proxies.pop(rid, None)
        self.proxied_to.pop(rid, None)
        target(data)

    def _apply_send(self, key: str, items: object) -> None:
        fallback = self.registry.sessions.get(key)
        if fallback is None or fallback.session is None or not isinstance(items, list):
            return
        limit = fallback.hub.app.max_message_size
        texts = [str(item) for item in items]
        self.registry.deliver(fallback, [t for t in texts if len(t.encode()) <= limit])

    def _serve(self, node: str, key: str, rid: str, kind: str) -> None:
        """Answer a receive request another node proxies for a session held here."""
        fallback = self.registry.sessions.get(key)
        if fallback is None:  # gone meanwhile: the client reconnects
            gone = b'c[4200,"This session is gone: reconnect"]\n'
            data = gone if kind == "xhr" else b"%x\r\n%s\r\n" % (len(gone), gone) + LAST_CHUNK
            self.send({"k": "data", "to": node, "r": rid, "d": data.decode(), "end": True})
            return
        self.registry.take_over(fallback)
        fallback.touch()
        if kind == "xhr_streaming":
            fallback.stream_opened(RemoteStream(self, node, rid))
            return
        answer = RemotePoll(self, node, rid, fallback)
        if fallback.queue or fallback.closing is not None:
            answer()
            fallback.idle_since = self.registry.ctx.loop.time()
            return
        self.registry.wait_poll(fallback, answer)
