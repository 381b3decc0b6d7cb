"""Settings from an explicit environment mapping plus an optional ``.env`` file.

Variable names are Laravel Reverb's (protocol.md §7) so a Laravel app's ``.env`` works
unchanged; overtone's own extras are ``OVERTONE_*``. Nothing here reads globals: the
caller passes ``environ`` (normally ``os.environ``). A bad value raises
:class:`ConfigError` whose message names the variable and says what is wrong.
"""

from __future__ import annotations

import json
import tempfile
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from dotenv import dotenv_values

from overtone.apps import WEBHOOK_EVENTS, App, ClientEventsFrom, RateLimit

T = TypeVar("T")

DEV_APP = App(id="100000", key="overtone-key", secret="overtone-secret")
"""The development app served when no app is configured (never in production)."""


class ConfigError(ValueError):
    """A configuration problem; the message names the variable and what is wrong."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server needs to start, validated."""

    apps: tuple[App, ...]
    host: str = "0.0.0.0"
    port: int = 8080
    path: str = ""
    hostname: str | None = None
    debug: bool = False
    production: bool = False
    using_dev_app: bool = False
    max_request_size: int = 1_000_000
    max_header_size: int = 16_384
    max_headers: int = 100
    http_timeout: float = 10.0
    keepalive_timeout: float = 60.0
    pong_timeout: float = 30.0
    max_write_buffer: int = 1_048_576
    signature_window: int = 600
    shutdown_timeout: float = 10.0
    tick_interval: float = 1.0
    workers: int = 1
    scaling: Scaling | None = None
    metrics_token: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    log_format: str = "text"
    pid_file: str | None = None
    restart_stagger: float = 2.0

    @property
    def scheme(self) -> str:
        """``https`` when overtone terminates TLS itself, else ``http``."""
        return "https" if self.tls_cert else "http"

    def pid_path(self) -> Path:
        """Where ``overtone start`` records its PID (``overtone restart`` reads it)."""
        if self.pid_file:
            return Path(self.pid_file)
        return Path(tempfile.gettempdir()) / f"overtone-{self.port}.pid"


@dataclass(frozen=True, slots=True)
class Scaling:
    """The Redis broker that joins several nodes into one cluster."""

    redis_url: str
    channel: str = "reverb"
    prefix: str = ""
    heartbeat_interval: float = 5.0
    node_timeout: float = 15.0

    @property
    def broker_channel(self) -> str:
        """The Redis pub/sub channel every node of this deployment uses."""
        return f"{self.prefix}{self.channel}"

    def redacted_url(self) -> str:
        """The Redis URL without its password, for logs."""
        scheme, sep, rest = self.redis_url.partition("://")
        if "@" not in rest:
            return self.redis_url
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        return f"{scheme}{sep}{user + ':***@' if user else ':***@'}{host}"


def read_environment(environ: Mapping[str, str], env_file: str | Path | None) -> dict[str, str]:
    """Merge a ``.env`` file under ``environ`` (process variables win, as in Laravel).

    ``env_file=None`` reads ``.env`` in the working directory when it exists; an explicit
    path that does not exist is an error.
    """
    path = Path(env_file) if env_file is not None else Path(".env")
    values: dict[str, str] = {}
    if path.is_file():
        values = {k: v for k, v in dotenv_values(path).items() if v is not None}
    elif env_file is not None:
        raise ConfigError(f"--env-file: no such file: {path}")
    values.update(environ)
    return values


class _Env:
    """Typed access to string variables, treating Laravel's empty/``null`` as unset."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = values

    def raw(self, name: str) -> str | None:
        value = self._values.get(name)
        if value is None:
            return None
        value = value.strip()
        return None if value == "" or value.lower() in ("null", "(null)") else value

    def get(self, name: str, default: T, parse: Callable[[str, str], T]) -> T:
        value = self.raw(name)
        return default if value is None else parse(name, value)


def _int(minimum: int) -> Callable[[str, str], int]:
    def parse(name: str, value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r} is not an integer") from None
        if number < minimum:
            raise ConfigError(f"{name}={number} must be at least {minimum}")
        return number

    return parse


def _float(minimum: float) -> Callable[[str, str], float]:
    def parse(name: str, value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r} is not a number") from None
        if not number >= minimum:
            raise ConfigError(f"{name}={number} must be at least {minimum}")
        return number

    return parse


def _bool(name: str, value: str) -> bool:
    lowered = value.lower().strip("()")
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={value!r} is not a boolean (use true or false)")


def _str(name: str, value: str) -> str:
    return value


def _client_events(name: str, value: str) -> ClientEventsFrom:
    try:
        return ClientEventsFrom(value.lower())
    except ValueError:
        choices = ", ".join(c.value for c in ClientEventsFrom)
        raise ConfigError(f"{name}={value!r} must be one of: {choices}") from None


def _origins(name: str, value: str) -> tuple[str, ...]:
    origins = tuple(o.strip() for o in value.split(",") if o.strip())
    if not origins:
        raise ConfigError(f"{name} must list at least one origin (or *)")
    return origins


def _readable_file(name: str, value: str) -> str:
    if not Path(value).is_file():
        raise ConfigError(f"{name}={value!r}: no such file")
    return value


def _log_format(name: str, value: str) -> str:
    if value.lower() not in ("text", "json"):
        raise ConfigError(f"{name}={value!r} must be text or json")
    return value.lower()


def _urls(name: str, value: str) -> tuple[str, ...]:
    urls = tuple(u.strip() for u in value.split(",") if u.strip())
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{name}: {url!r} is not an http:// or https:// URL")
    return urls


def _webhook_events(name: str, value: str) -> frozenset[str]:
    names = frozenset(n.strip() for n in value.split(",") if n.strip())
    unknown = names - WEBHOOK_EVENTS
    if unknown:
        choices = ", ".join(sorted(WEBHOOK_EVENTS))
        raise ConfigError(f"{name}: unknown event(s) {sorted(unknown)}; use: {choices}")
    return names


def _path(name: str, value: str) -> str:
    path = "/" + value.strip("/")
    return "" if path == "/" else path


def _app_from_env(env: _Env) -> App | None:
    app_id, key, secret = (env.raw(f"REVERB_APP_{part}") for part in ("ID", "KEY", "SECRET"))
    if app_id is None and key is None and secret is None:
        return None
    for name, value in (("REVERB_APP_ID", app_id), ("REVERB_APP_KEY", key)):
        if value is None:
            raise ConfigError(f"{name} is empty while other REVERB_APP_* credentials are set")
    if secret is None:
        raise ConfigError("REVERB_APP_SECRET is empty while REVERB_APP_KEY is set")
    assert app_id is not None and key is not None
    base = App(id=app_id, key=key, secret=secret)
    return App(
        id=app_id,
        key=key,
        secret=secret,
        enabled=env.get("OVERTONE_APP_ENABLED", base.enabled, _bool),
        allowed_origins=env.get("OVERTONE_APP_ALLOWED_ORIGINS", base.allowed_origins, _origins),
        ping_interval=env.get("REVERB_APP_PING_INTERVAL", base.ping_interval, _int(1)),
        activity_timeout=env.get("REVERB_APP_ACTIVITY_TIMEOUT", base.activity_timeout, _int(1)),
        max_connections=env.get("REVERB_APP_MAX_CONNECTIONS", None, _int(1)),
        max_message_size=env.get("REVERB_APP_MAX_MESSAGE_SIZE", base.max_message_size, _int(64)),
        client_events_from=env.get(
            "REVERB_APP_ACCEPT_CLIENT_EVENTS_FROM", base.client_events_from, _client_events
        ),
        rate_limit=RateLimit(
            enabled=env.get("REVERB_APP_RATE_LIMITING_ENABLED", True, _bool),
            max_attempts=env.get("REVERB_APP_RATE_LIMITING_MAX_ATTEMPTS", 10, _int(1)),
            decay_seconds=env.get("REVERB_APP_RATE_LIMITING_DECAY_SECONDS", 1.0, _float(0.001)),
            terminate=env.get("REVERB_APP_RATE_LIMITING_TERMINATE", False, _bool),
        ),
        max_presence_members=env.get(
            "OVERTONE_PRESENCE_MAX_MEMBERS", base.max_presence_members, _int(1)
        ),
        cache_ttl=env.get("OVERTONE_CACHE_TTL", base.cache_ttl, _float(1)),
        webhook_urls=env.get("OVERTONE_WEBHOOK_URL", (), _urls),
        webhook_events=env.get("OVERTONE_WEBHOOK_EVENTS", None, _webhook_events),
    )


_APP_FIELDS: dict[str, Callable[[str, str], Any]] = {
    "enabled": _bool,
    "ping_interval": _int(1),
    "activity_timeout": _int(1),
    "max_connections": _int(1),
    "max_message_size": _int(64),
    "accept_client_events_from": _client_events,
    "max_presence_members": _int(1),
    "max_presence_user_info": _int(1),
    "cache_ttl": _float(1),
}
_RATE_FIELDS: dict[str, Callable[[str, str], Any]] = {
    "enabled": _bool,
    "max_attempts": _int(1),
    "decay_seconds": _float(0.001),
    "terminate": _bool,
}


def _typed(where: str, value: object, parse: Callable[[str, str], T]) -> T:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return parse(where, text)


def _app_from_table(source: str, index: int, table: object) -> App:
    where = f"{source}: apps[{index}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table/object")
    for required in ("id", "key", "secret"):
        if not isinstance(table.get(required), str | int) or str(table[required]) == "":
            raise ConfigError(f"{where}.{required} is required and must be a non-empty string")
    options: dict[str, Any] = {}
    for name, value in table.items():
        if name in ("id", "key", "secret"):
            continue
        if name in ("webhook_urls", "webhook_events"):
            if not isinstance(value, list) or not all(isinstance(o, str) for o in value):
                raise ConfigError(f"{where}.{name} must be a list of strings")
            parse = _urls if name == "webhook_urls" else _webhook_events
            options[name] = parse(f"{where}.{name}", ",".join(value))
        elif name == "allowed_origins":
            if not isinstance(value, list) or not all(isinstance(o, str) for o in value):
                raise ConfigError(f"{where}.allowed_origins must be a list of strings")
            options["allowed_origins"] = tuple(value) or ("*",)
        elif name == "rate_limit":
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.rate_limit must be a table/object")
            unknown = set(value) - set(_RATE_FIELDS)
            if unknown:
                raise ConfigError(f"{where}.rate_limit: unknown option(s) {sorted(unknown)}")
            options["rate_limit"] = RateLimit(
                **{
                    k: _typed(f"{where}.rate_limit.{k}", v, _RATE_FIELDS[k])
                    for k, v in value.items()
                }
            )
        elif name in _APP_FIELDS:
            key = "client_events_from" if name == "accept_client_events_from" else name
            options[key] = _typed(f"{where}.{name}", value, _APP_FIELDS[name])
        else:
            raise ConfigError(f"{where}: unknown option {name!r}")
    return App(id=str(table["id"]), key=str(table["key"]), secret=str(table["secret"]), **options)


def load_apps_file(path: str | Path) -> tuple[App, ...]:
    """Apps from a TOML (``[[apps]]``) or JSON (``{"apps": [...]}``) file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"OVERTONE_APPS_FILE: cannot read {file}: {exc.strerror}") from None
    try:
        document = json.loads(text) if file.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"OVERTONE_APPS_FILE: {file} is not valid: {exc}") from None
    tables = document.get("apps") if isinstance(document, dict) else None
    if not isinstance(tables, list) or not tables:
        raise ConfigError(f"OVERTONE_APPS_FILE: {file} must contain a non-empty 'apps' list")
    return tuple(_app_from_table(str(file), i, t) for i, t in enumerate(tables))


def load_settings(environ: Mapping[str, str], **overrides: Any) -> Settings:
    """Build validated :class:`Settings` from merged variables and command-line overrides.

    ``overrides`` (``host``, ``port``, ``path``, ``hostname``, ``debug``) win over variables
    when not ``None``.
    """
    env = _Env(environ)
    production = (env.raw("APP_ENV") or "").lower() == "production"
    apps_file = env.raw("OVERTONE_APPS_FILE")
    apps: list[App] = list(load_apps_file(apps_file)) if apps_file else []
    env_app = _app_from_env(env)
    if env_app is not None and not any(a.key == env_app.key for a in apps):
        apps.insert(0, env_app)
    using_dev_app = not apps
    if using_dev_app:
        if production:
            raise ConfigError(
                "APP_ENV=production but no app is configured: set REVERB_APP_ID, "
                "REVERB_APP_KEY and REVERB_APP_SECRET (or OVERTONE_APPS_FILE)"
            )
        apps = [DEV_APP]
    if production:
        for app in apps:
            if app.key == DEV_APP.key or app.secret == DEV_APP.secret:
                raise ConfigError(
                    f"APP_ENV=production but app {app.id!r} uses the development credentials"
                )
    ids = [a.id for a in apps]
    keys = [a.key for a in apps]
    if len(set(ids)) != len(ids) or len(set(keys)) != len(keys):
        raise ConfigError("OVERTONE_APPS_FILE: app ids and keys must be unique")
    settings = Settings(
        apps=tuple(apps),
        host=env.get("REVERB_SERVER_HOST", "0.0.0.0", _str),
        port=env.get("REVERB_SERVER_PORT", 8080, _int(0)),
        path=env.get("REVERB_SERVER_PATH", "", _path),
        production=production,
        using_dev_app=using_dev_app,
        max_request_size=env.get("REVERB_MAX_REQUEST_SIZE", 1_000_000, _int(1_024)),
        max_header_size=env.get("OVERTONE_MAX_HEADER_SIZE", 16_384, _int(1_024)),
        http_timeout=env.get("OVERTONE_HTTP_TIMEOUT", 10.0, _float(0.1)),
        keepalive_timeout=env.get("OVERTONE_KEEPALIVE_TIMEOUT", 60.0, _float(0.1)),
        pong_timeout=env.get("OVERTONE_PONG_TIMEOUT", 30.0, _float(0.1)),
        max_write_buffer=env.get("OVERTONE_MAX_WRITE_BUFFER", 1_048_576, _int(16_384)),
        signature_window=env.get("OVERTONE_SIGNATURE_WINDOW", 600, _int(1)),
        shutdown_timeout=env.get("OVERTONE_SHUTDOWN_TIMEOUT", 10.0, _float(0.1)),
        tick_interval=env.get("OVERTONE_TICK_INTERVAL", 1.0, _float(0.01)),
        workers=env.get("OVERTONE_WORKERS", 1, _int(1)),
        metrics_token=env.raw("OVERTONE_METRICS_TOKEN"),
        tls_cert=env.get("OVERTONE_TLS_CERT", None, _readable_file),
        tls_key=env.get("OVERTONE_TLS_KEY", None, _readable_file),
        log_format=env.get("OVERTONE_LOG_FORMAT", "text", _log_format),
        pid_file=env.raw("OVERTONE_PID_FILE"),
        restart_stagger=env.get("OVERTONE_RESTART_STAGGER", 2.0, _float(0)),
        scaling=_scaling(env),
    )
    if settings.port > 65_535:
        raise ConfigError(f"REVERB_SERVER_PORT={settings.port} is not a valid port")
    changes = {k: v for k, v in overrides.items() if v is not None}
    if "path" in changes:
        changes["path"] = _path("--path", changes["path"])
    settings = replace(settings, **changes)
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise ConfigError("OVERTONE_TLS_CERT and OVERTONE_TLS_KEY must be set together")
    if settings.workers > 1 and settings.scaling is None:
        raise ConfigError(
            f"--workers {settings.workers} needs the Redis broker to coordinate the workers: "
            "set REVERB_SCALING_ENABLED=true and REDIS_URL (or REDIS_HOST/REDIS_PORT)"
        )
    return settings


def _scaling(env: _Env) -> Scaling | None:
    if not env.get("REVERB_SCALING_ENABLED", False, _bool):
        return None
    url = env.raw("REDIS_URL")
    if url is None:
        scheme = env.get("REDIS_SCHEME", "tcp", _str).lower()
        tls = scheme in ("tls", "rediss")
        host = env.get("REDIS_HOST", "127.0.0.1", _str)
        port = env.get("REDIS_PORT", 6379, _int(1))
        db = env.get("REDIS_DB", 0, _int(0))
        username = env.raw("REDIS_USERNAME") or ""
        password = env.raw("REDIS_PASSWORD")
        auth = ""
        if password is not None:
            auth = f"{quote(username, safe='')}:{quote(password, safe='')}@"
        elif username:
            auth = f"{quote(username, safe='')}@"
        url = f"{'rediss' if tls else 'redis'}://{auth}{host}:{port}/{db}"
    elif not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"REDIS_URL={url!r} must start with redis://, rediss:// or unix://")
    heartbeat = env.get("OVERTONE_HEARTBEAT_INTERVAL", 5.0, _float(0.05))
    timeout = env.get("OVERTONE_NODE_TIMEOUT", 15.0, _float(0.1))
    if timeout <= heartbeat:
        raise ConfigError(
            f"OVERTONE_NODE_TIMEOUT={timeout} must be longer than "
            f"OVERTONE_HEARTBEAT_INTERVAL={heartbeat}"
        )
    return Scaling(
        redis_url=url,
        channel=env.get("REVERB_SCALING_CHANNEL", "reverb", _str),
        prefix=env.get("REDIS_PREFIX", "", _str),
        heartbeat_interval=heartbeat,
        node_timeout=timeout,
    )
