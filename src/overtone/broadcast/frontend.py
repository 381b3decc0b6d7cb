"""What a page needs to connect with laravel-echo or pusher-js, from the ``REVERB_*`` values.

The same derivation as a Laravel app's ``HandleInertiaRequests`` sharing ``reverb.key``,
``host``, ``port`` and ``scheme`` with its ``echo.js``::

    new Echo({broadcaster: 'reverb', key, wsHost: host, wsPort: port, wssPort: port,
              forceTLS: scheme === 'https', enabledTransports: ['ws', 'wss']})

:func:`frontend_config` returns ``None`` when ``REVERB_APP_KEY`` is not set, so the page
can say realtime is off (and must not connect). Defaults as Laravel's: scheme ``https``,
port 443 (80 for ``http``); with none of ``REVERB_HOST``, ``REVERB_SCHEME`` and
``REVERB_PORT`` set (local development, matching the broadcaster's fallback) the scheme is
``http`` and the port ``REVERB_SERVER_PORT`` (8080). With no ``REVERB_HOST`` the host is
``request_host`` (e.g. Django's ``request.get_host()``, any port dropped) if given, else it
is left out of the options and :func:`echo_script` uses ``window.location.hostname``. No
secret ever reaches this module's output.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overtone.broadcast.config import read_values

_IDENTIFIER_PATH = re.compile(r"[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*")


@dataclass(frozen=True, slots=True)
class FrontendConfig:
    """Public connection values for the browser (never the secret)."""

    key: str
    host: str | None
    port: int
    scheme: str = "https"
    path: str = ""

    @property
    def force_tls(self) -> bool:
        """Whether the browser must use ``wss://``."""
        return self.scheme == "https"

    def to_dict(self) -> dict[str, Any]:
        """``{"key", "host", "port", "scheme", "path"}``: the runbook's Inertia prop."""
        return {
            "key": self.key,
            "host": self.host,
            "port": self.port,
            "scheme": self.scheme,
            "path": self.path,
        }

    def echo_options(self) -> dict[str, Any]:
        """The options object for ``new Echo(...)`` (pusher-js names)."""
        options: dict[str, Any] = {"broadcaster": "reverb", "key": self.key}
        if self.host is not None:
            options["wsHost"] = self.host
        options.update(
            wsPort=self.port,
            wssPort=self.port,
            forceTLS=self.force_tls,
            enabledTransports=["ws", "wss"],
        )
        if self.path:
            options["wsPath"] = self.path
        return options


def frontend_config(
    environ: Mapping[str, str] | None = None,
    *,
    env_file: str | Path | None = None,
    request_host: str | None = None,
) -> FrontendConfig | None:
    """The page's connection values, or ``None`` when realtime is not configured.

    ``environ`` defaults to ``os.environ``; ``env_file`` is an optional ``.env`` (process
    variables win). Malformed ``REVERB_PORT``/``REVERB_SCHEME`` also give ``None``: a page
    that cannot connect should say realtime is off rather than retry forever.
    """
    values = read_values(os.environ if environ is None else environ, env_file)

    def pick(name: str) -> str | None:
        value = (values.get(name) or "").strip()
        return None if value == "" or value.lower() in ("null", "(null)") else value

    key = pick("REVERB_APP_KEY")
    local = all(pick(n) is None for n in ("REVERB_HOST", "REVERB_SCHEME", "REVERB_PORT"))
    # No REVERB_HOST: local development against the server on this machine, as the
    # broadcaster assumes (plain http on REVERB_SERVER_PORT, 8080 by default).
    scheme = (pick("REVERB_SCHEME") or ("http" if local else "https")).lower()
    port_text = pick("REVERB_PORT") or (pick("REVERB_SERVER_PORT") or "8080" if local else None)
    if key is None or scheme not in ("http", "https"):
        return None
    if port_text is None:
        port = 443 if scheme == "https" else 80
    elif port_text.isdigit() and 0 < int(port_text) < 65536:
        port = int(port_text)
    else:
        return None
    path = "/" + (pick("REVERB_SERVER_PATH") or "").strip("/")
    return FrontendConfig(
        key=key,
        host=pick("REVERB_HOST") or (_hostname(request_host) if request_host else None),
        port=port,
        scheme=scheme,
        path="" if path == "/" else path,
    )


def _hostname(host: str) -> str:
    """``example.com:8000`` -> ``example.com`` (a request's Host may carry a port)."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    name, sep, port = host.rpartition(":")
    return name if sep and port.isdigit() and ":" not in name else host


def script_json(value: object) -> str:
    """JSON safe to embed in a ``<script>`` element (``<``, ``>``, ``&``, U+2028/9 escaped)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escape in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escape)
    return text


def echo_options_json(config: FrontendConfig | None) -> str:
    """The Echo options as JSON, or ``null`` when realtime is off."""
    return script_json(None if config is None else config.echo_options())


def echo_script(
    config: FrontendConfig | None, *, assign_to: str = "window.Echo", nonce: str | None = None
) -> str:
    """A ``<script>`` that sets ``assign_to`` to ``new Echo({...})``, or to ``null``.

    Load laravel-echo and pusher-js first (``Echo`` and ``Pusher`` globals). With realtime
    off, ``assign_to`` is ``null`` so the page can show that instead of connecting.
    """
    if not _IDENTIFIER_PATH.fullmatch(assign_to):
        raise ValueError(f"assign_to must be a JavaScript name like window.Echo: {assign_to!r}")
    attribute = f' nonce="{html.escape(nonce, quote=True)}"' if nonce else ""
    if config is None:
        return f"<script{attribute}>{assign_to} = null; /* realtime is off */</script>"
    options = echo_options_json(config)
    if config.host is None:
        options = options[:-1] + ",wsHost:window.location.hostname}"
    # laravel-echo's browser build exposes its module as ``Echo``: the class is Echo.default.
    return f"<script{attribute}>{assign_to} = new (Echo.default || Echo)({options});</script>"
