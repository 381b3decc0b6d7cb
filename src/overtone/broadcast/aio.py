"""The asyncio broadcaster, for FastAPI, Starlette and async Django views.

Needs ``httpx2`` (preferred, what Starlette's TestClient now uses) or ``httpx``: the two
share the API used here.

Same contract as :class:`overtone.broadcast.client.Broadcaster`: nothing raises unless
``strict``, no call waits longer than the connect plus read timeouts, and failures are
logged once a minute. Requests are built and signed by the ``pusher`` SDK and sent with
one pooled ``AsyncClient`` (the SDK's own aiohttp backend opens a session per
request, takes a single timeout and cannot add ``REVERB_SERVER_PATH``).

Use one instance per event loop and ``await aclose()`` at shutdown (e.g. in a FastAPI
lifespan) or ``async with``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from overtone.broadcast.config import BroadcastConfig
from overtone.broadcast.failsoft import WarningLimiter
from overtone.broadcast.operations import BroadcasterBase, Operations
from overtone.broadcast.sdk import Json, SignedRequest

if TYPE_CHECKING:
    import httpx2 as httpx
else:
    try:
        import httpx2 as httpx
    except ModuleNotFoundError:  # the predecessor, same API
        import httpx


class AsyncBroadcaster(BroadcasterBase):
    """Publishes through overtone's HTTP API from async code."""

    def __init__(
        self,
        config: BroadcastConfig | None = None,
        *,
        strict: bool | None = None,
        limiter: WarningLimiter | None = None,
        json_encoder: type[json.JSONEncoder] | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        """As :class:`~overtone.broadcast.client.Broadcaster`; ``client`` is used as given
        (and not closed by :meth:`aclose`), else one is made on first use."""
        self.config = BroadcastConfig.from_env() if config is None else config
        self._ops = Operations(
            self.config, strict=strict, limiter=limiter, json_encoder=json_encoder
        )
        self._given_client = client
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        env_file: str | Path | None = None,
        strict: bool | None = None,
        limiter: WarningLimiter | None = None,
    ) -> AsyncBroadcaster:
        """A broadcaster configured from ``REVERB_*`` variables (see :mod:`.config`)."""
        config = BroadcastConfig.from_env(environ, env_file=env_file)
        return cls(config, strict=strict, limiter=limiter)

    async def trigger(
        self,
        channels: str | Sequence[str],
        event: str,
        data: object,
        socket_id: str | None = None,
    ) -> Json | None:
        """Publish ``event`` on up to 100 channels; ``socket_id`` is left out of delivery."""
        request = self._ops.build(lambda s: s.trigger(channels, event, data, socket_id))
        return await self._send(request)

    async def trigger_batch(self, events: Iterable[Mapping[str, Any]]) -> Json | None:
        """Publish up to 10 events (``{"channel", "name", "data", "socket_id"?}``) at once."""
        return await self._send(self._ops.build(lambda s: s.trigger_batch(events)))

    async def send_to_user(self, user_id: str | int, event: str, data: object) -> Json | None:
        """Send ``event`` to every connection signed in as ``user_id``."""
        return await self._send(self._ops.build(lambda s: s.send_to_user(user_id, event, data)))

    async def terminate_user_connections(self, user_id: str | int) -> Json | None:
        """Close every connection of ``user_id`` (signed in, or a presence member)."""
        return await self._send(self._ops.build(lambda s: s.terminate_user_connections(user_id)))

    async def channel_info(self, channel: str, info: Sequence[str] = ()) -> Json | None:
        """``{"occupied": bool, ...}``; ``info`` may ask for subscription/user counts."""
        return await self._send(self._ops.build(lambda s: s.channel_info(channel, info)))

    async def channels_info(
        self, prefix_filter: str | None = None, info: Sequence[str] = ()
    ) -> Json | None:
        """``{"channels": {name: {...}}}`` for the occupied channels."""
        return await self._send(self._ops.build(lambda s: s.channels_info(prefix_filter, info)))

    async def users_info(self, channel: str) -> Json | None:
        """``{"users": [{"id": ...}]}`` of a presence channel."""
        return await self._send(self._ops.build(lambda s: s.users_info(channel)))

    async def position(self, channel: str) -> Json | None:
        """The channel's stream position ``{"epoch": str, "offset": int}``, or ``None``.

        As :meth:`Broadcaster.position <overtone.broadcast.client.Broadcaster.position>`.
        """
        request = self._ops.build(lambda s: s.position(channel))
        return self._ops.position_of(channel, await self._send(request))

    async def history(
        self,
        channel: str,
        since: int | None = None,
        epoch: str | None = None,
        limit: int | None = None,
    ) -> Json | None:
        """``{"position", "complete", "events"}``: the held events after ``since``.

        As :meth:`Broadcaster.history <overtone.broadcast.client.Broadcaster.history>`.
        """
        request = self._ops.build(lambda s: s.history(channel, since, epoch, limit))
        return await self._send(request)

    async def aclose(self) -> None:
        """Close the client this broadcaster made (a given client is left open)."""
        client, self._client, self._loop = self._client, None, None
        if client is not None:
            await client.aclose()

    async def __aenter__(self) -> AsyncBroadcaster:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _http(self) -> httpx.AsyncClient:
        if self._given_client is not None:
            return self._given_client
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            # A client is bound to the loop it first ran on; a new loop gets a new one.
            self._client = httpx.AsyncClient(trust_env=False, follow_redirects=False)
            self._loop = loop
        return self._client

    async def _send(self, request: SignedRequest | None) -> Json | None:
        if request is None:
            return None
        connect, read = self.config.connect_timeout, self.config.read_timeout
        try:
            response = await self._http().request(
                request.method,
                request.url,
                content=request.body or None,
                headers=dict(request.headers),
                timeout=httpx.Timeout(connect=connect, read=read, write=read, pool=connect),
            )
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            self._ops.unreachable(error)
            return None
        text = response.content.decode("utf-8", "replace")
        return self._ops.answered(request, response.status_code, text)
