"""A TCP proxy that a test can cut and restore: one client's network going away for a while.

``NetworkCut("127.0.0.2", "127.0.0.1", [8000, 8080])`` listens on 127.0.0.2 (any 127.x
address reaches this machine) on each port and forwards to 127.0.0.1 on the same port, so a
browser that opens pages at ``http://127.0.0.2:8000`` reaches the app and the realtime server
through the proxy, with the same host names and ports in every URL.

:meth:`NetworkCut.cut` is what a phone sees when it loses its network: every connection of
the client is reset and new ones are refused until :meth:`NetworkCut.restore`. The server
side of a cut connection is left open and silent, as after a real drop (the server notices
by its own timeouts). The proxy runs its own event loop in a thread, so a blocking test can
drive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import struct
import threading
from collections.abc import Iterable
from concurrent.futures import Future
from types import TracebackType
from typing import Any


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (linger 0), as a dropped network looks to the client."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65_536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass


class NetworkCut:
    """Forwards ``listen_host:port`` to ``target_host:port`` for each port; see the module."""

    def __init__(self, listen_host: str, target_host: str, ports: Iterable[int]) -> None:
        self.listen_host = listen_host
        self.target_host = target_host
        self.ports = list(ports)
        self.down = False
        self.accepted = 0
        self.refused = 0
        self.reset = 0
        self._clients: set[asyncio.StreamWriter] = set()
        self._upstreams: set[asyncio.StreamWriter] = set()
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> NetworkCut:
        """Listen on every port (raises if one cannot be bound)."""
        self._thread.start()
        self._call(self._listen()).result(timeout=10)
        return self

    def cut(self) -> None:
        """Reset the client's connections and refuse new ones until :meth:`restore`."""
        self._call(self._cut()).result(timeout=10)

    def restore(self) -> None:
        """Let connections through again."""
        self._call(self._restore()).result(timeout=10)

    def close(self) -> None:
        """Stop listening, close every connection and the loop."""
        if self._thread.is_alive():
            self._call(self._close()).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()

    def stats(self) -> dict[str, int]:
        """Connections accepted, refused during a cut, and reset by a cut."""
        return {"accepted": self.accepted, "refused": self.refused, "reset": self.reset}

    def __enter__(self) -> NetworkCut:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- in the proxy's loop -------------------------------------------------------------

    def _call(self, coroutine: Any) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    async def _listen(self) -> None:
        for port in self.ports:
            serve = functools.partial(self._serve, port=port)
            self._servers.append(await asyncio.start_server(serve, self.listen_host, port))

    async def _cut(self) -> None:
        self.down = True
        for writer in list(self._clients):
            self.reset += 1
            _reset(writer)
        self._clients.clear()

    async def _restore(self) -> None:
        self.down = False

    async def _close(self) -> None:
        self.down = True
        for server in self._servers:
            server.close()
        for writer in self._clients | self._upstreams:
            writer.transport.abort()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int
    ) -> None:
        if self.down:
            self.refused += 1
            _reset(writer)
            return
        try:
            upstream_reader, upstream = await asyncio.open_connection(self.target_host, port)
        except OSError:
            _reset(writer)
            return
        self.accepted += 1
        self._clients.add(writer)
        self._upstreams.add(upstream)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        pumps = [
            asyncio.ensure_future(_pump(reader, upstream)),
            asyncio.ensure_future(_pump(upstream_reader, writer)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            if writer not in self._clients:
                # Cut: the server side stays open and unanswered until it gives up.
                while await upstream_reader.read(65_536):
                    pass
        except (ConnectionError, OSError):
            pass
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._clients.discard(writer)
            self._upstreams.discard(upstream)
            writer.close()
            upstream.close()
            self._tasks.discard(task)
