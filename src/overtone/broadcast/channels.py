"""Who may join which channel: the idea of Laravel's ``routes/channels.php``.

::

    channels = ChannelRegistry()

    @channels.channel("orders.{order_id}")          # private-orders.42
    def order(user, order_id: str) -> bool:
        return Order.objects.filter(pk=order_id, owner=user).exists()

    @channels.channel("room.{room}")                # presence-room.lobby
    def room(user, room: str) -> dict | bool:
        return {"name": user.name}                  # presence user_info

Matching (as Laravel): the channel name loses its first ``private-encrypted-``,
``private-`` or ``presence-`` prefix, then patterns are tried in registration order and
must match the whole rest; ``{param}`` matches one or more characters other than ``.``
and is passed to the callback as a keyword argument (a string).

Callback ``(user, **params)``: a falsy result (``False``, ``None``, ``{}``) denies. On a
presence channel the member is, by the result's shape:

- ``True``: ``user_id`` from ``user_id(user)``, no ``user_info``;
- ``{"user_id": ..., "user_info": {...}}`` or ``{"id": ..., "info": {...}}``: as given;
- any other mapping: it is the ``user_info`` and ``user_id`` comes from ``user_id(user)``
  (falling back to its ``"id"``), Laravel's convention.

Callbacks (and ``user_data``) may be ``async``; then use :meth:`ChannelRegistry.authorize_async`
(the Starlette/FastAPI endpoints do).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from overtone.broadcast.config import BroadcastConfig
from overtone.broadcast.errors import AuthRequestError, NotConfigured
from overtone.broadcast.failsoft import Reporter, WarningLimiter
from overtone.broadcast.sdk import Signer
from overtone.protocol.channel_names import ChannelType, classify, name_error

ChannelCallback = Callable[..., Any]
"""``(user, **params) -> bool | Mapping | None`` (or an awaitable of one)."""

SOCKET_ID = re.compile(r"\d+\.\d+")
LARAVEL_PREFIXES = ("private-encrypted-", "private-", "presence-")
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def normalize(channel_name: str) -> str:
    """The name patterns are matched against: Laravel's prefixes stripped (the first one)."""
    for prefix in LARAVEL_PREFIXES:
        if channel_name.startswith(prefix):
            return channel_name[len(prefix) :]
    return channel_name


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """``orders.{id}`` as a full-match regex with one named group per ``{param}``."""
    parts: list[str] = []
    position = 0
    for found in _PARAM.finditer(pattern):
        parts.append(re.escape(pattern[position : found.start()]))
        parts.append(f"(?P<{found.group(1)}>[^.]+)")
        position = found.end()
    parts.append(re.escape(pattern[position:]))
    rest = _PARAM.sub("", pattern)
    if "{" in rest or "}" in rest:
        raise ValueError(f"channel pattern {pattern!r}: a parameter must look like {{name}}")
    return re.compile("".join(parts))


def default_user_id(user: Any) -> object:
    """``user["id"]``, ``user.pk`` (Django), ``user.id`` or ``user.get_id()`` (Flask-Login)."""
    if isinstance(user, Mapping):
        return user.get("id")
    for attribute in ("pk", "id"):
        value = getattr(user, attribute, None)
        if value is not None:
            return value
    get_id = getattr(user, "get_id", None)
    return get_id() if callable(get_id) else None


@dataclass(frozen=True, slots=True)
class ChannelRule:
    """One registered pattern and its callback."""

    pattern: str
    regex: re.Pattern[str]
    callback: ChannelCallback


@dataclass(frozen=True, slots=True)
class _Pending:
    """A request that passed validation and matched a rule; the callback decides."""

    channel: str
    socket_id: str
    kind: ChannelType
    signer: Signer
    rule: ChannelRule
    params: dict[str, str]


class ChannelRegistry:
    """Channel rules plus the app credentials that sign the answers.

    ``config`` defaults to :meth:`BroadcastConfig.from_env`, read on first use.
    ``user_id(user)`` names a user (default :func:`default_user_id`); ``user_data(user)``
    gives the sign-in ``user_data`` (``id`` required, ``user_info``, ``watchlist``;
    default ``{"id": user_id(user)}``).
    """

    def __init__(
        self,
        config: BroadcastConfig | None = None,
        *,
        user_id: Callable[[Any], object] = default_user_id,
        user_data: Callable[[Any], Any] | None = None,
        limiter: WarningLimiter | None = None,
    ) -> None:
        self._config = config
        self._signer: Signer | None = None
        self.user_id = user_id
        self.user_data = user_data
        self.rules: list[ChannelRule] = []
        self.reporter = Reporter(strict=False, limiter=limiter)

    @property
    def config(self) -> BroadcastConfig:
        """The credentials used to sign (read from the environment on first use)."""
        if self._config is None:
            self._config = BroadcastConfig.from_env()
        return self._config

    def channel(
        self, pattern: str, callback: ChannelCallback | None = None
    ) -> Callable[[ChannelCallback], ChannelCallback]:
        """Register ``callback`` for ``pattern``; usable as a decorator or called directly."""
        regex = compile_pattern(pattern)

        def register(function: ChannelCallback) -> ChannelCallback:
            self.rules.append(ChannelRule(pattern, regex, function))
            return function

        if callback is not None:
            register(callback)
        return register

    def match(self, channel_name: str) -> tuple[ChannelRule, dict[str, str]] | None:
        """The first rule matching ``channel_name`` and its parameters, or ``None``."""
        name = normalize(channel_name)
        for rule in self.rules:
            found = rule.regex.fullmatch(name)
            if found is not None:
                return rule, found.groupdict()
        return None

    # -- channel authorization -----------------------------------------------------------

    def authorize(self, channel_name: str, socket_id: str, user: Any) -> dict[str, str] | None:
        """The auth response for pusher-js, or ``None`` to deny (403).

        Raises :class:`AuthRequestError` (400) for a malformed socket id or channel name or a
        channel that needs no authorization, and :class:`NotConfigured` when the app cannot
        sign (no credentials; an encrypted channel without a master key).
        """
        pending = self._begin(channel_name, socket_id, user)
        if pending is None:
            return None
        result = pending.rule.callback(user, **pending.params)
        return self._finish(pending, user, _sync_result(result, pending.rule.pattern))

    async def authorize_async(
        self, channel_name: str, socket_id: str, user: Any
    ) -> dict[str, str] | None:
        """As :meth:`authorize`, awaiting an async callback."""
        pending = self._begin(channel_name, socket_id, user)
        if pending is None:
            return None
        result = pending.rule.callback(user, **pending.params)
        if inspect.isawaitable(result):
            result = await result
        return self._finish(pending, user, result)

    def _begin(self, channel_name: str, socket_id: str, user: Any) -> _Pending | None:
        _check_socket_id(socket_id)
        problem = name_error(channel_name)
        if problem is not None:
            raise AuthRequestError(400, f"channel_name: {problem}")
        kind = classify(channel_name)
        if kind.server_to_user:
            raise AuthRequestError(400, "#server-to-user- channels are joined by user sign-in")
        if not kind.needs_auth:
            raise AuthRequestError(400, f"{channel_name} is public: it needs no authorization")
        signer = self.signer()
        if kind.encrypted and signer.config.encryption_master_key_base64 is None:
            raise NotConfigured(
                "OVERTONE_ENCRYPTION_MASTER_KEY_BASE64 is not set", "private-encrypted- channels"
            )
        found = None if user is None else self.match(channel_name)
        if found is None:
            return None
        rule, params = found
        return _Pending(channel_name, socket_id, kind, signer, rule, params)

    def _finish(self, pending: _Pending, user: Any, result: Any) -> dict[str, str] | None:
        if not result:
            return None
        member = None
        if pending.kind.presence:
            member = self._member(user, result, pending.rule.pattern)
        return pending.signer.channel_auth(pending.channel, pending.socket_id, member)

    def _member(self, user: Any, result: Any, pattern: str) -> dict[str, Any]:
        if result is True:
            user_id, info = self.user_id(user), None
        elif isinstance(result, Mapping):
            if "user_id" in result:
                user_id, info = result["user_id"], result.get("user_info")
            elif "id" in result and set(result) <= {"id", "info"}:
                user_id, info = result["id"], result.get("info")
            else:
                user_id, info = self.user_id(user), result
                user_id = result.get("id") if user_id is None else user_id
        else:
            raise TypeError(
                f"channel {pattern!r}: a presence callback returns True or a mapping, "
                f"not {type(result).__name__}"
            )
        if user_id is None or isinstance(user_id, bool) or str(user_id) == "":
            raise ValueError(
                f"channel {pattern!r}: cannot tell the user's id; pass user_id= to "
                "ChannelRegistry or return {'user_id': ..., 'user_info': {...}}"
            )
        member: dict[str, Any] = {"user_id": str(user_id)}
        if info is not None:
            member["user_info"] = dict(info) if isinstance(info, Mapping) else info
        return member

    # -- user sign-in --------------------------------------------------------------------

    def authorize_user(self, socket_id: str, user: Any) -> dict[str, str] | None:
        """The ``pusher:signin`` response ``{"auth", "user_data"}``, or ``None`` (403)."""
        _check_socket_id(socket_id)
        signer = self.signer()
        if user is None:
            return None
        return self._sign_user(signer, socket_id, _sync_result(self._user_data(user), "user_data"))

    async def authorize_user_async(self, socket_id: str, user: Any) -> dict[str, str] | None:
        """As :meth:`authorize_user`, awaiting an async ``user_data``."""
        _check_socket_id(socket_id)
        signer = self.signer()
        if user is None:
            return None
        data = self._user_data(user)
        if inspect.isawaitable(data):
            data = await data
        return self._sign_user(signer, socket_id, data)

    def _user_data(self, user: Any) -> Any:
        return {"id": self.user_id(user)} if self.user_data is None else self.user_data(user)

    def _sign_user(self, signer: Signer, socket_id: str, data: Any) -> dict[str, str] | None:
        if not data:
            return None
        if not isinstance(data, Mapping):
            raise TypeError(f"user_data must return a mapping, not {type(data).__name__}")
        user_id = data.get("id")
        if user_id is None or isinstance(user_id, bool) or str(user_id) == "":
            raise ValueError(
                "user_data needs an 'id' (pass user_id= or user_data= to the registry)"
            )
        return signer.user_auth(socket_id, {**data, "id": str(user_id)})

    def signer(self) -> Signer:
        """The SDK signer for the app; raises :class:`NotConfigured` when it cannot sign."""
        if self._signer is None:
            reason = self.config.disabled_reason
            if reason is not None:
                raise NotConfigured(reason)
            self._signer = Signer(self.config, None)
        return self._signer


def _check_socket_id(socket_id: object) -> None:
    if not isinstance(socket_id, str) or not SOCKET_ID.fullmatch(socket_id):
        raise AuthRequestError(400, "socket_id must look like 1234.5678")


def _sync_result(result: Any, what: str) -> Any:
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()  # never awaited: close it so no warning is raised later
        raise TypeError(f"{what} is async: use the *_async methods (the Starlette endpoints do)")
    return result
