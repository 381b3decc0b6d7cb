"""The synchronous broadcaster, for Django, Flask and any WSGI or threaded code.

Contract: no method raises (unless ``strict``) and none blocks longer than the connect
plus read timeouts (2 s each by default). Each returns the server's JSON answer as a dict
(``{}`` for a plain trigger), or ``None`` when nothing was sent or the server did not
accept it; a warning on the ``overtone.broadcast`` logger says why, once a minute.
Thread-safe: share one instance per process.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from overtone.broadcast.config import BroadcastConfig
from overtone.broadcast.failsoft import WarningLimiter
from overtone.broadcast.operations import BroadcasterBase, Operations
from overtone.broadcast.sdk import Json, SignedRequest


class Broadcaster(BroadcasterBase):
    """Publishes through overtone's HTTP API with requests signed by the ``pusher`` SDK."""

    def __init__(
        self,
        config: BroadcastConfig | None = None,
        *,
        strict: bool | None = None,
        limiter: WarningLimiter | None = None,
        json_encoder: type[json.JSONEncoder] | None = None,
        session: requests.Session | None = None,
    ) -> None:
        """``config`` defaults to :meth:`BroadcastConfig.from_env`; ``strict`` overrides it.

        ``json_encoder`` serialises non-string ``data`` (e.g. Django's
        ``DjangoJSONEncoder``). The default session ignores the environment (proxy and CA
        bundle variables, ``.netrc``): the realtime server is the app's own; pass a
        ``session`` to change that.
        """
        self.config = BroadcastConfig.from_env() if config is None else config
        self._ops = Operations(
            self.config, strict=strict, limiter=limiter, json_encoder=json_encoder
        )
        if session is None:
            session = requests.Session()
            session.trust_env = False
        self._session = session

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        env_file: str | Path | None = None,
        strict: bool | None = None,
        limiter: WarningLimiter | None = None,
    ) -> Broadcaster:
        """A broadcaster configured from ``REVERB_*`` variables (see :mod:`.config`)."""
        config = BroadcastConfig.from_env(environ, env_file=env_file)
        return cls(config, strict=strict, limiter=limiter)

    def trigger(
        self,
        channels: str | Sequence[str],
        event: str,
        data: object,
        socket_id: str | None = None,
    ) -> Json | None:
        """Publish ``event`` on up to 100 channels; ``socket_id`` is left out of delivery."""
        return self._send(self._ops.build(lambda s: s.trigger(channels, event, data, socket_id)))

    def trigger_batch(self, events: Iterable[Mapping[str, Any]]) -> Json | None:
        """Publish up to 10 events (``{"channel", "name", "data", "socket_id"?}``) at once."""
        return self._send(self._ops.build(lambda s: s.trigger_batch(events)))

    def send_to_user(self, user_id: str | int, event: str, data: object) -> Json | None:
        """Send ``event`` to every connection signed in as ``user_id``."""
        return self._send(self._ops.build(lambda s: s.send_to_user(user_id, event, data)))

    def terminate_user_connections(self, user_id: str | int) -> Json | None:
        """Close every connection of ``user_id`` (signed in, or a presence member)."""
        return self._send(self._ops.build(lambda s: s.terminate_user_connections(user_id)))

    def channel_info(self, channel: str, info: Sequence[str] = ()) -> Json | None:
        """``{"occupied": bool, ...}``; ``info`` may ask for subscription/user counts."""
        return self._send(self._ops.build(lambda s: s.channel_info(channel, info)))

    def channels_info(
        self, prefix_filter: str | None = None, info: Sequence[str] = ()
    ) -> Json | None:
        """``{"channels": {name: {...}}}`` for the occupied channels."""
        return self._send(self._ops.build(lambda s: s.channels_info(prefix_filter, info)))

    def users_info(self, channel: str) -> Json | None:
        """``{"users": [{"id": ...}]}`` of a presence channel."""
        return self._send(self._ops.build(lambda s: s.users_info(channel)))

    def position(self, channel: str) -> Json | None:
        """The channel's stream position ``{"epoch": str, "offset": int}`` (protocol.md §8).

        Read it before the state a page is rendered from, and hand it to the page (see
        :func:`~overtone.broadcast.frontend.frontend_config`): the page then recovers every
        event published after it. ``None`` when there is none (also history off).
        """
        request = self._ops.build(lambda s: s.position(channel))
        return self._ops.position_of(channel, self._send(request))

    def history(
        self,
        channel: str,
        since: int | None = None,
        epoch: str | None = None,
        limit: int | None = None,
    ) -> Json | None:
        """``{"position", "complete", "events": [{"offset", "event", "data"}]}``: the held
        events after offset ``since`` of ``epoch`` (at most ``limit``, server default 100).

        ``complete`` false: some events after ``since`` are gone; reload from the database.
        """
        return self._send(self._ops.build(lambda s: s.history(channel, since, epoch, limit)))

    def close(self) -> None:
        """Close pooled connections (the broadcaster stays usable)."""
        self._session.close()

    def __enter__(self) -> Broadcaster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, request: SignedRequest | None) -> Json | None:
        if request is None:
            return None
        try:
            response = self._session.request(
                request.method,
                request.url,
                data=request.body or None,
                headers=dict(request.headers),
                timeout=(self.config.connect_timeout, self.config.read_timeout),
                allow_redirects=False,
            )
        except requests.RequestException as error:
            self._ops.unreachable(error)
            return None
        text = response.content.decode("utf-8", "replace")
        return self._ops.answered(request, response.status_code, text)
