"""Broadcasting and channel authorization for Python web apps (Django, FastAPI, Flask...).

- :class:`Broadcaster` / :class:`AsyncBroadcaster` (needs ``httpx2`` or ``httpx``): publish through
  overtone's HTTP API, configured from a Laravel ``.env``'s ``REVERB_*`` variables; read a
  channel's stream ``position`` and ``history`` (protocol.md §8).
- :class:`ChannelRegistry`: who may join which channel, and the signed answers pusher-js
  and laravel-echo expect from ``/broadcasting/auth`` and ``/broadcasting/user-auth``.
- ``overtone.broadcast.starlette`` / ``.django`` / ``.flask``: those two endpoints.
- :func:`frontend_config` / :func:`echo_script`: what a page needs to connect;
  :func:`recovery_script_tag` loads the lossless-reconnect add-on from overtone.

Fail soft, like Laravel apps expect: with realtime not configured or the server down, every
call returns ``None`` after one warning a minute and the web request goes on; pass
``strict=True`` (or set ``OVERTONE_BROADCAST_STRICT=true``) to get exceptions instead.
Requires the ``pusher`` package; framework modules import their framework only when used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from overtone.broadcast.channels import ChannelRegistry, default_user_id
from overtone.broadcast.client import Broadcaster
from overtone.broadcast.config import BroadcastConfig
from overtone.broadcast.endpoints import socket_id_from_headers
from overtone.broadcast.errors import (
    AuthRequestError,
    BroadcastError,
    InvalidBroadcast,
    NoHistory,
    NotConfigured,
    ServerRejected,
    ServerUnreachable,
)
from overtone.broadcast.failsoft import WarningLimiter
from overtone.broadcast.frontend import (
    FrontendConfig,
    echo_options_json,
    echo_script,
    frontend_config,
    recovery_script_tag,
)

if TYPE_CHECKING:
    from overtone.broadcast.aio import AsyncBroadcaster

__all__ = [
    "AsyncBroadcaster",
    "AuthRequestError",
    "BroadcastConfig",
    "BroadcastError",
    "Broadcaster",
    "ChannelRegistry",
    "FrontendConfig",
    "InvalidBroadcast",
    "NoHistory",
    "NotConfigured",
    "ServerRejected",
    "ServerUnreachable",
    "WarningLimiter",
    "default_user_id",
    "echo_options_json",
    "echo_script",
    "frontend_config",
    "recovery_script_tag",
    "socket_id_from_headers",
]


def __getattr__(name: str) -> Any:
    """``AsyncBroadcaster`` is imported on first use so that its HTTP client stays optional."""
    if name == "AsyncBroadcaster":
        return importlib.import_module("overtone.broadcast.aio").AsyncBroadcaster
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
