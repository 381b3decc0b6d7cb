"""The PyPI ``pusher`` SDK, used for what it does well: validating, encrypting and signing.

Every HTTP API request and every auth token is produced by the SDK, so signatures are
exactly the SDK's. The transport is ours (see :mod:`.client` and :mod:`.aio`): the SDK's
backends take one timeout, ignore ``REVERB_SERVER_PATH`` and, for aiohttp, open a session
per request. Two SDK gaps are bridged here:

- the SDK insists on a numeric app id; Reverb's are often not (``telemedicina-prod``), so
  a non-numeric id is set after construction and URL-quoted in paths;
- its ``terminate_user_connections`` path lacks ``/apps/{id}``; we sign Pusher's documented
  ``/apps/{id}/users/{user}/terminate_connections`` (Reverb and overtone accept it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import quote, urlencode

from pusher.authentication_client import AuthenticationClient
from pusher.http import GET, POST, Request
from pusher.pusher_client import PusherClient
from pusher.util import app_id_re, validate_channel, validate_user_id

from overtone.broadcast.config import BroadcastConfig
from overtone.broadcast.errors import ServerRejected

Json = dict[str, Any]

_CHANNEL_SAFE = "-_=@,.;"
"""Characters of channel names kept as they are in a path (``#`` is escaped)."""


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """One signed HTTP API call, ready for any transport."""

    method: str
    path: str
    url: str
    body: bytes
    headers: Mapping[str, str]


class _NoTransport:
    """Stands in for the SDK's HTTP backend: requests are built by the SDK, sent by us."""

    def __init__(self, client: object, **options: object) -> None:
        del client, options

    def send_request(self, request: object) -> NoReturn:
        raise RuntimeError("overtone.broadcast sends requests itself")


class Signer:
    """The SDK clients for one enabled :class:`BroadcastConfig`.

    Construction raises ``ValueError`` if the SDK refuses the values (call only when
    ``config.enabled``). Each method raises ``ValueError``/``TypeError`` for arguments the
    SDK rejects; nothing here does I/O.
    """

    def __init__(
        self, config: BroadcastConfig, json_encoder: type[json.JSONEncoder] | None
    ) -> None:
        self.config = config
        app_id = config.app_id or ""
        options: dict[str, Any] = {
            "key": config.key,
            "secret": config.secret,
            "ssl": config.scheme == "https",
            "host": config.host,
            "port": config.port,
            "timeout": config.read_timeout,
            "encryption_master_key_base64": config.encryption_master_key_base64,
            "json_encoder": json_encoder,
            "backend": _NoTransport,
        }
        numeric = bool(app_id_re.match(app_id))
        self._rest: Any = PusherClient(app_id=app_id if numeric else "0", **options)
        self._auth: Any = AuthenticationClient(app_id=app_id if numeric else "0", **options)
        if not numeric:
            # The SDK only reads the id through the ``app_id`` property, to build paths.
            self._rest._app_id = quote(app_id, safe="")
        self.app_path = f"/apps/{self._rest.app_id}"

    # -- HTTP API requests ---------------------------------------------------------------

    def trigger(
        self, channels: str | Sequence[str], event: str, data: object, socket_id: str | None
    ) -> SignedRequest:
        """``POST /apps/{id}/events`` (data JSON-encoded unless a string; encrypted if due)."""
        names = [channels] if isinstance(channels, str) else list(channels)
        if not names:
            raise ValueError("trigger needs at least one channel")
        return self._signed(self._rest.trigger.make_request(names, event, data, socket_id))

    def trigger_batch(self, events: Iterable[Mapping[str, Any]]) -> SignedRequest:
        """``POST /apps/{id}/batch_events``; each event has ``channel``, ``name``, ``data``."""
        batch = [dict(event) for event in events]
        for event in batch:
            missing = [k for k in ("channel", "name", "data") if k not in event]
            if missing:
                raise ValueError(f"batch event is missing {', '.join(missing)}")
        if not batch:
            raise ValueError("trigger_batch needs at least one event")
        return self._signed(self._rest.trigger_batch.make_request(batch, False))

    def send_to_user(self, user_id: str | int, event: str, data: object) -> SignedRequest:
        """An event on ``#server-to-user-{id}``: every connection signed in as that user."""
        uid = validate_user_id(str(user_id))
        return self.trigger([f"#server-to-user-{uid}"], event, data, None)

    def terminate_user_connections(self, user_id: str | int) -> SignedRequest:
        """``POST /apps/{id}/users/{user}/terminate_connections``."""
        uid = validate_user_id(str(user_id))
        path = f"{self.app_path}/users/{uid}/terminate_connections"
        return self._signed(Request(self._rest, POST, path, {}))

    def channel_info(self, channel: str, info: Sequence[str]) -> SignedRequest:
        """``GET /apps/{id}/channels/{channel}``."""
        return self._signed(self._rest.channel_info.make_request(channel, list(info)))

    def channels_info(self, prefix_filter: str | None, info: Sequence[str]) -> SignedRequest:
        """``GET /apps/{id}/channels``."""
        return self._signed(self._rest.channels_info.make_request(prefix_filter, list(info)))

    def users_info(self, channel: str) -> SignedRequest:
        """``GET /apps/{id}/channels/{channel}/users`` (presence channels)."""
        return self._signed(self._rest.users_info.make_request(channel))

    def position(self, channel: str) -> SignedRequest:
        """``GET /apps/{id}/channels/{channel}?info=position`` (protocol.md §8)."""
        return self._channel_get(channel, "", {"info": "position"})

    def history(
        self, channel: str, since: int | None, epoch: str | None, limit: int | None
    ) -> SignedRequest:
        """``GET /apps/{id}/channels/{channel}/history``: the held events after ``since``."""
        params: dict[str, str] = {}
        if epoch is not None:
            if not isinstance(epoch, str) or not epoch:
                raise TypeError(f"epoch must be a non-empty string, not {epoch!r}")
            params["epoch"] = epoch
        for name, value, least in (("since", since, 0), ("limit", limit, 1)):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an integer, not {value!r}")
            if value < least:
                raise ValueError(f"{name} must be at least {least}, not {value}")
            params[name] = str(value)
        return self._channel_get(channel, "/history", params)

    def _channel_get(self, channel: str, suffix: str, params: dict[str, str]) -> SignedRequest:
        name = quote(validate_channel(channel), safe=_CHANNEL_SAFE)
        return self._signed(
            Request(self._rest, GET, f"{self.app_path}/channels/{name}{suffix}", params)
        )

    def _signed(self, request: Any) -> SignedRequest:
        query = urlencode(sorted(request.query_params.items()))
        path: str = request.path
        return SignedRequest(
            method=request.method,
            path=path,
            url=f"{self.config.api_base}{path}?{query}",
            body=request.body,
            headers=dict(request.headers),
        )

    # -- auth tokens (no request) --------------------------------------------------------

    def channel_auth(
        self, channel: str, socket_id: str, channel_data: Mapping[str, Any] | None
    ) -> dict[str, str]:
        """The SDK's ``authenticate``: ``auth``, plus ``channel_data``/``shared_secret``."""
        payload: dict[str, Any] = self._auth.authenticate(
            channel, socket_id, dict(channel_data) if channel_data is not None else None
        )
        secret = payload.get("shared_secret")
        if isinstance(secret, bytes):  # the SDK returns base64 as bytes: not JSON-ready
            payload["shared_secret"] = secret.decode("ascii")
        return {str(k): str(v) for k, v in payload.items()}

    def user_auth(self, socket_id: str, user_data: Mapping[str, Any]) -> dict[str, str]:
        """The SDK's ``authenticate_user``: ``auth`` and the ``user_data`` JSON string."""
        payload: dict[str, Any] = self._auth.authenticate_user(socket_id, dict(user_data))
        return {str(k): str(v) for k, v in payload.items()}


def interpret(config: BroadcastConfig, request: SignedRequest, status: int, text: str) -> Json:
    """The JSON object of a 2xx answer; anything else raises :class:`ServerRejected`."""
    if 200 <= status < 300:
        try:
            document = json.loads(text) if text.strip() else {}
        except ValueError:
            document = None
        if isinstance(document, dict):
            return document
    raise ServerRejected(config.server_url, request.method, request.path, status, text)
