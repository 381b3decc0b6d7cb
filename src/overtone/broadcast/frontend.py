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

Lossless reconnect (protocol.md §8): read each channel's position with
``Broadcaster.position()`` *before* reading the state the page is rendered from, pass them as
``positions={"private-patient.7": position, ...}`` (``None`` values are left out, so a
fail-soft ``None`` just means "no position"), load the add-on with
:func:`recovery_script_tag` (``{scheme}://{host}:{port}{path}/overtone/recovery.js``, served
by overtone) before :func:`echo_script`, and the page recovers every event published after
the render. Where recovery is impossible the page gets a DOM event
``overtone:resync`` on ``window`` (``event.detail.channel``) and reloads that state.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from overtone.broadcast.config import read_values

_IDENTIFIER_PATH = re.compile(r"[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*")
RECOVERY_PATH = "/overtone/recovery.js"
"""Where overtone serves the recovery add-on (after ``REVERB_SERVER_PATH``)."""
RESYNC_EVENT = "overtone:resync"
"""The DOM event :func:`echo_script` dispatches on ``window`` when a channel must reload."""


@dataclass(frozen=True, slots=True)
class FrontendConfig:
    """Public connection values for the browser (never the secret)."""

    key: str
    host: str | None
    port: int
    scheme: str = "https"
    path: str = ""
    positions: dict[str, dict[str, Any]] | None = field(default=None, compare=False)
    """Stream positions the page starts its channels from (see :func:`frontend_config`)."""
    http_fallback: bool = False
    """Let pusher-js fall back to HTTP streaming and polling where WebSockets are refused
    (docs/fallback.md); overtone serves them under ``{path}/pusher``."""

    @property
    def force_tls(self) -> bool:
        """Whether the browser must use ``wss://``."""
        return self.scheme == "https"

    def to_dict(self) -> dict[str, Any]:
        """``{"key", "host", "port", "scheme", "path"}``: the runbook's Inertia prop.

        With positions, also ``"positions": {channel: {"epoch", "offset"}}``.
        """
        values: dict[str, Any] = {
            "key": self.key,
            "host": self.host,
            "port": self.port,
            "scheme": self.scheme,
            "path": self.path,
        }
        if self.positions is not None:
            values["positions"] = self.positions
        return values

    @property
    def recovery_url(self) -> str | None:
        """Where overtone serves the recovery add-on; ``None`` when the host is the page's."""
        if self.host is None:
            return None
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}{RECOVERY_PATH}"

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
        if self.http_fallback:
            if self.host is not None:
                options["httpHost"] = self.host
            options.update(
                httpPort=self.port,
                httpsPort=self.port,
                httpPath=self.path + "/pusher",
                enabledTransports=["ws", "wss", "xhr_streaming", "xhr_polling"],
                disabledTransports=["sockjs"],
            )
        return options


def frontend_config(
    environ: Mapping[str, str] | None = None,
    *,
    env_file: str | Path | None = None,
    request_host: str | None = None,
    positions: Mapping[str, Mapping[str, Any] | None] | None = None,
    http_fallback: bool = False,
) -> FrontendConfig | None:
    """The page's connection values, or ``None`` when realtime is not configured.

    ``environ`` defaults to ``os.environ``; ``env_file`` is an optional ``.env`` (process
    variables win). Malformed ``REVERB_PORT``/``REVERB_SCHEME`` also give ``None``: a page
    that cannot connect should say realtime is off rather than retry forever.
    ``positions`` maps channel names to ``Broadcaster.position()`` answers (``None``
    values are left out); a malformed position raises ``ValueError``. ``http_fallback``
    lets the page fall back to HTTP where WebSockets are refused (laravel-echo's ``reverb``
    broadcaster allows WebSockets only unless told otherwise).
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
        positions=None if positions is None else clean_positions(positions),
        http_fallback=http_fallback,
    )


def clean_positions(
    positions: Mapping[str, Mapping[str, Any] | None],
) -> dict[str, dict[str, Any]]:
    """``{channel: {"epoch": str, "offset": int}}`` without the ``None`` values.

    Raises ``ValueError`` for anything else: the add-on would refuse it in the page.
    """
    clean: dict[str, dict[str, Any]] = {}
    for channel, position in positions.items():
        if position is None:
            continue
        epoch, offset = position.get("epoch"), position.get("offset")
        if not isinstance(channel, str) or not isinstance(epoch, str):
            raise ValueError(f"a position is {{'epoch': str, 'offset': int}}: {channel!r}")
        if type(offset) is not int or offset < 0:
            raise ValueError(f"a position's offset is an integer >= 0: {channel!r}")
        clean[channel] = {"epoch": epoch, "offset": offset}
    return clean


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
    config: FrontendConfig | None,
    *,
    assign_to: str = "window.Echo",
    nonce: str | None = None,
    positions: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> str:
    """A ``<script>`` that sets ``assign_to`` to ``new Echo({...})``, or to ``null``.

    Load laravel-echo and pusher-js first (``Echo`` and ``Pusher`` globals). With realtime
    off, ``assign_to`` is ``null`` so the page can show that instead of connecting.

    With ``positions`` (or ``config.positions``; ``{}`` for none yet) the script also
    installs the recovery add-on when ``window.OvertoneRecovery`` is loaded (see
    :func:`recovery_script_tag`): ``OvertoneRecovery.install(Echo.connector.pusher,
    {positions, onResync})``, before the page subscribes. ``onResync`` dispatches
    ``overtone:resync`` on ``window`` with ``detail: {channel, position}``: the page must
    reload that channel's state. Without the add-on the page works as before.
    """
    if not _IDENTIFIER_PATH.fullmatch(assign_to):
        raise ValueError(f"assign_to must be a JavaScript name like window.Echo: {assign_to!r}")
    attribute = _nonce(nonce)
    if config is None:
        return f"<script{attribute}>{assign_to} = null; /* realtime is off */</script>"
    options = echo_options_json(config)
    if config.host is None:
        options = options[:-1] + ",wsHost:window.location.hostname}"
        if config.http_fallback:
            options = options[:-1] + ",httpHost:window.location.hostname}"
    # laravel-echo's browser build exposes its module as ``Echo``: the class is Echo.default.
    script = f"{assign_to} = new (Echo.default || Echo)({options});"
    start = config.positions if positions is None else clean_positions(positions)
    if start is not None:
        script += _INSTALL % (assign_to, script_json(start))
    return f"<script{attribute}>{script}</script>"


_INSTALL = (
    "(function(echo,positions){var add=window.OvertoneRecovery;"
    "if(!echo||!add||typeof add.install!=='function')return;"
    "try{add.install(echo.connector.pusher,{positions:positions,onResync:function(c,at){"
    f"window.dispatchEvent(new CustomEvent('{RESYNC_EVENT}',{{detail:{{channel:c,position:at}}}}))"
    "}});}catch(e){console.warn('overtone recovery: '+e.message);}})(%s,%s);"
)


def recovery_script_tag(config: FrontendConfig | None, *, nonce: str | None = None) -> str:
    """The ``<script src>`` loading the recovery add-on from overtone, or ``""`` when off.

    Put it before :func:`echo_script` (it must run first). The URL is
    ``{scheme}://{host}:{port}{path}/overtone/recovery.js`` (:attr:`FrontendConfig.recovery_url`);
    with no host known, the page's own host name, as :func:`echo_script` does. If overtone
    cannot be reached the add-on is simply missing and the page works without it.
    """
    if config is None:
        return ""
    attribute = _nonce(nonce)
    url = config.recovery_url
    if url is not None:
        return f'<script src="{html.escape(url, quote=True)}"{attribute}></script>'
    before = script_json(f"{config.scheme}://")
    after = script_json(f":{config.port}{config.path}{RECOVERY_PATH}")
    inner = (
        f"'<script src=\"'+{before}+window.location.hostname+{after}+'\"{attribute}><\\/script>'"
    )
    return f"<script{attribute}>document.write({inner});</script>"


def _nonce(nonce: str | None) -> str:
    return f' nonce="{html.escape(nonce, quote=True)}"' if nonce else ""
