"""Where and how a web app reaches overtone: from a Laravel ``.env`` or explicit values.

Variables (the ones a Laravel app's ``.env`` already has, protocol.md §7):

======================================  ====================================================
``REVERB_APP_ID/KEY/SECRET``            credentials; any missing one turns broadcasting off
``REVERB_HOST``                         host the API is posted to (Laravel's broadcaster
                                        uses the same); unset: ``127.0.0.1``, the overtone
                                        on this machine
``REVERB_PORT``                         default: scheme's port (443/80); with no
                                        ``REVERB_HOST``: ``REVERB_SERVER_PORT`` or 8080
``REVERB_SCHEME``                       ``http`` or ``https``; default ``https``, or ``http``
                                        with no ``REVERB_HOST``
``REVERB_SERVER_PATH``                  path prefix overtone serves under (default none)
``OVERTONE_BROADCAST_STRICT``           ``true``: raise instead of logging a warning
``OVERTONE_BROADCAST_TIMEOUT``          connect and read timeout in seconds (default 2)
``OVERTONE_ENCRYPTION_MASTER_KEY_BASE64``  32 bytes, base64, for ``private-encrypted-``
(or ``PUSHER_ENCRYPTION_MASTER_KEY_BASE64``) channels
======================================  ====================================================

Contract: :meth:`BroadcastConfig.from_env` never raises. Empty values and Laravel's
``null`` count as unset; a malformed value turns broadcasting off and
:attr:`BroadcastConfig.disabled_reason` names the variable and what is wrong.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values
from pusher.crypto import parse_master_key

DEFAULT_TIMEOUT = 2.0
MASTER_KEY_VARIABLES = (
    "OVERTONE_ENCRYPTION_MASTER_KEY_BASE64",
    "PUSHER_ENCRYPTION_MASTER_KEY_BASE64",
)
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True, slots=True)
class BroadcastConfig:
    """Credentials, address and behaviour of a broadcaster; build one directly or from env."""

    app_id: str | None = None
    key: str | None = None
    secret: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    scheme: str = "http"
    path: str = ""
    connect_timeout: float = DEFAULT_TIMEOUT
    read_timeout: float = DEFAULT_TIMEOUT
    strict: bool = False
    encryption_master_key_base64: str | None = None
    problem: str | None = None
    """A malformed value found while reading the environment (turns broadcasting off)."""

    @property
    def disabled_reason(self) -> str | None:
        """Why broadcasting is off, naming the variable; ``None`` when it is on."""
        if self.problem is not None:
            return self.problem
        missing = [
            name
            for name, value in (
                ("REVERB_APP_ID", self.app_id),
                ("REVERB_APP_KEY", self.key),
                ("REVERB_APP_SECRET", self.secret),
            )
            if not value
        ]
        if len(missing) == 1:
            return f"{missing[0]} is not set"
        if missing:
            return f"{', '.join(missing[:-1])} and {missing[-1]} are not set"
        if self.scheme not in ("http", "https"):
            return f"REVERB_SCHEME={self.scheme!r} must be http or https"
        return None

    @property
    def enabled(self) -> bool:
        """Whether broadcasting and authorization can work with these values."""
        return self.disabled_reason is None

    @property
    def server_url(self) -> str:
        """``scheme://host:port``: how warnings name the server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def api_base(self) -> str:
        """The URL that API paths (``/apps/...``) are appended to, with the server path."""
        return f"{self.server_url}{self.path}"

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, env_file: str | Path | None = None
    ) -> BroadcastConfig:
        """Read the ``REVERB_*`` variables from ``environ`` (default ``os.environ``).

        ``env_file`` is an optional ``.env`` read with python-dotenv; its values are
        overridden by ``environ`` (process variables win, as in Laravel) and a missing file
        is ignored, so production can set real variables and ship no ``.env``.
        """
        values = read_values(os.environ if environ is None else environ, env_file)
        problems: list[str] = []

        def pick(name: str) -> str | None:
            value = values.get(name)
            if value is None:
                return None
            value = value.strip()
            return None if value == "" or value.lower() in ("null", "(null)") else value

        host = pick("REVERB_HOST")
        scheme = (pick("REVERB_SCHEME") or ("https" if host else "http")).lower()
        if scheme not in ("http", "https"):
            problems.append(f"REVERB_SCHEME={scheme!r} must be http or https")
            scheme = "http"
        default_port = (443 if scheme == "https" else 80) if host else 8080
        port_name = "REVERB_PORT" if host or pick("REVERB_PORT") else "REVERB_SERVER_PORT"
        port_text = pick(port_name)
        port = default_port if port_text is None else _port(port_name, port_text, problems)
        timeout = _timeout(pick("OVERTONE_BROADCAST_TIMEOUT"), problems)
        strict = _flag("OVERTONE_BROADCAST_STRICT", pick("OVERTONE_BROADCAST_STRICT"), problems)
        master_key = next((v for v in map(pick, MASTER_KEY_VARIABLES) if v is not None), None)
        if master_key is not None:
            try:
                parse_master_key(None, master_key)
            except ValueError as error:
                problems.append(f"{MASTER_KEY_VARIABLES[0]}: {error}")
                master_key = None
        path = "/" + (pick("REVERB_SERVER_PATH") or "").strip("/")
        return cls(
            app_id=pick("REVERB_APP_ID"),
            key=pick("REVERB_APP_KEY"),
            secret=pick("REVERB_APP_SECRET"),
            host=host or "127.0.0.1",
            port=port,
            scheme=scheme,
            path="" if path == "/" else path,
            connect_timeout=timeout,
            read_timeout=timeout,
            strict=strict,
            encryption_master_key_base64=master_key,
            problem=problems[0] if problems else None,
        )


def read_values(environ: Mapping[str, str], env_file: str | Path | None) -> dict[str, str]:
    """``environ`` over the optional ``.env`` file's values (a missing file is ignored)."""
    values: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        values = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    values.update(environ)
    return values


def _port(name: str, text: str, problems: list[str]) -> int:
    port = int(text) if text.isdigit() else 0
    if not 0 < port < 65536:
        problems.append(f"{name}={text!r} is not a port number")
        return 8080
    return port


def _timeout(text: str | None, problems: list[str]) -> float:
    if text is None:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < 3600:
        problems.append(f"OVERTONE_BROADCAST_TIMEOUT={text!r} is not a number of seconds")
        return DEFAULT_TIMEOUT
    return seconds


def _flag(name: str, text: str | None, problems: list[str]) -> bool:
    if text is None:
        return False
    lowered = text.lower().strip("()")
    if lowered not in _TRUE + _FALSE:
        problems.append(f"{name}={text!r} is not a boolean (use true or false)")
    return lowered in _TRUE
