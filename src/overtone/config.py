"""Settings from an explicit environment mapping plus an optional ``.env`` file.

Variable names are Laravel Reverb's (protocol.md §7) so a Laravel app's ``.env`` works
unchanged; overtone's own extras are ``OVERTONE_*``. Nothing here reads globals: the
caller passes ``environ`` (normally ``os.environ``). A bad value raises
:class:`ConfigError` whose message names the variable and says what is wrong.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from dotenv import dotenv_values

from overtone.apps import App, RateLimit
from overtone.apps_file import load_apps_file
from overtone.channels.history import HistoryLimits
from overtone.envvars import (
    ConfigError,
    Env,
    addresses,
    bool_value,
    client_events,
    float_value,
    int_value,
    log_format,
    origins,
    path_value,
    readable_file,
    str_value,
    urls,
    webhook_events,
)

__all__ = [
    "DEV_APP",
    "ConfigError",
    "Scaling",
    "Settings",
    "load_apps_file",
    "load_settings",
    "read_environment",
]

DEV_APP = App(id="100000", key="overtone-key", secret="overtone-secret")
"""The development app served when no app is configured (never in production)."""


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
    history_memory: int = 64 * 1_048_576
    """Node-wide cap on stored history, bytes (oldest events evicted first)."""
    max_write_buffer: int = 1_048_576
    signature_window: int = 600
    shutdown_timeout: float = 10.0
    tick_interval: float = 1.0
    workers: int = 1
    scaling: Scaling | None = None
    metrics_token: str | None = None
    dashboard_password: str | None = None
    """Turns the dashboard on (``{path}/dashboard``, Basic user ``overtone``)."""
    max_connections: int | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    log_format: str = "text"
    pid_file: str | None = None
    restart_stagger: float = 2.0
    http_fallback: bool = True
    """Serve pusher-js's ``xhr_streaming`` and ``xhr_polling`` transports."""
    http_fallback_path: str = "/pusher"
    """pusher-js's ``httpPath``: the fallback is served under ``{path}{this}/app/``."""
    http_session_timeout: float = 15.0
    """Seconds a fallback session lives without a receive request."""
    http_poll_timeout: float = 25.0
    """Seconds a poll waits for a message before it is answered with a heartbeat."""

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
    """The Redis broker that joins several nodes into one cluster.

    Redis is found in one of three ways: ``redis_url`` itself (one server, or a managed
    primary endpoint), through ``sentinels`` (the primary of ``sentinel_master``), or
    through ``cluster_nodes`` (the Redis Cluster primary owning the broker channel's slot).
    With sentinels or cluster nodes, ``redis_url`` still gives the credentials, TLS and
    database of the connection to the primary; its host and port are not used.
    """

    redis_url: str
    channel: str = "reverb"
    prefix: str = ""
    heartbeat_interval: float = 5.0
    node_timeout: float = 15.0
    sentinels: tuple[tuple[str, int], ...] = ()
    sentinel_master: str = ""
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    cluster_nodes: tuple[tuple[str, int], ...] = ()
    tls_ca: str | None = None
    """A PEM CA bundle to verify the Redis (and Sentinel) certificates with."""

    @property
    def broker_channel(self) -> str:
        """The Redis pub/sub channel every node of this deployment uses.

        On a Redis Cluster the name carries a hash tag (``{prefix+channel}``, unless it has
        one already), so the channel and every history key share one slot.
        """
        name = f"{self.prefix}{self.channel}"
        if self.cluster_nodes and not _has_hash_tag(name):
            return "{" + name + "}"
        return name

    def redacted_url(self) -> str:
        """The Redis URL without its password, for logs."""
        scheme, sep, rest = self.redis_url.partition("://")
        if "@" not in rest:
            return self.redis_url
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        return f"{scheme}{sep}{user + ':***@' if user else ':***@'}{host}"


def _has_hash_tag(name: str) -> bool:
    """Whether Redis Cluster hashes ``name`` by a non-empty ``{tag}`` inside it."""
    start = name.find("{")
    end = name.find("}", start + 1) if start >= 0 else -1
    return end > start + 1


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


def _app_from_env(env: Env) -> App | None:
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
        enabled=env.get("OVERTONE_APP_ENABLED", base.enabled, bool_value),
        allowed_origins=env.get("OVERTONE_APP_ALLOWED_ORIGINS", base.allowed_origins, origins),
        ping_interval=env.get("REVERB_APP_PING_INTERVAL", base.ping_interval, int_value(1)),
        activity_timeout=env.get(
            "REVERB_APP_ACTIVITY_TIMEOUT", base.activity_timeout, int_value(1)
        ),
        max_connections=env.get("REVERB_APP_MAX_CONNECTIONS", None, int_value(1)),
        max_message_size=env.get(
            "REVERB_APP_MAX_MESSAGE_SIZE", base.max_message_size, int_value(64)
        ),
        client_events_from=env.get(
            "REVERB_APP_ACCEPT_CLIENT_EVENTS_FROM", base.client_events_from, client_events
        ),
        rate_limit=RateLimit(
            enabled=env.get("REVERB_APP_RATE_LIMITING_ENABLED", True, bool_value),
            max_attempts=env.get("REVERB_APP_RATE_LIMITING_MAX_ATTEMPTS", 10, int_value(1)),
            decay_seconds=env.get(
                "REVERB_APP_RATE_LIMITING_DECAY_SECONDS", 1.0, float_value(0.001)
            ),
            terminate=env.get("REVERB_APP_RATE_LIMITING_TERMINATE", False, bool_value),
        ),
        max_presence_members=env.get(
            "OVERTONE_PRESENCE_MAX_MEMBERS", base.max_presence_members, int_value(1)
        ),
        cache_ttl=env.get("OVERTONE_CACHE_TTL", base.cache_ttl, float_value(1)),
        history=_history(env),
        webhook_urls=env.get("OVERTONE_WEBHOOK_URL", (), urls),
        webhook_events=env.get("OVERTONE_WEBHOOK_EVENTS", None, webhook_events),
        **_access(env),
    )


def _access(env: Env) -> dict[str, Any]:
    """Hosted Pusher's per-app features for the app of the ``REVERB_APP_*`` variables (or
    the development app): subscription counting and authorized connections."""
    base = DEV_APP
    return {
        "subscription_count": env.get(
            "OVERTONE_SUBSCRIPTION_COUNT", base.subscription_count, bool_value
        ),
        "authorized_connections": env.get(
            "OVERTONE_AUTHORIZED_CONNECTIONS", base.authorized_connections, bool_value
        ),
        "authorization_timeout": env.get(
            "OVERTONE_AUTHORIZATION_TIMEOUT", base.authorization_timeout, float_value(1)
        ),
    }


def _history(env: Env) -> HistoryLimits:
    """``OVERTONE_HISTORY_*`` for the app of the ``REVERB_APP_*`` variables (or the
    development app)."""
    base = HistoryLimits()
    return HistoryLimits(
        enabled=env.get("OVERTONE_HISTORY_ENABLED", base.enabled, bool_value),
        max_events=env.get("OVERTONE_HISTORY_MAX_EVENTS", base.max_events, int_value(1)),
        ttl=env.get("OVERTONE_HISTORY_TTL", base.ttl, float_value(1)),
    )


def load_settings(environ: Mapping[str, str], **overrides: Any) -> Settings:
    """Build validated :class:`Settings` from merged variables and command-line overrides.

    ``overrides`` (``host``, ``port``, ``path``, ``hostname``, ``debug``) win over variables
    when not ``None``.
    """
    env = Env(environ)
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
        apps = [replace(DEV_APP, history=_history(env), **_access(env))]
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
        host=env.get("REVERB_SERVER_HOST", "0.0.0.0", str_value),
        port=env.get("REVERB_SERVER_PORT", 8080, int_value(0)),
        path=env.get("REVERB_SERVER_PATH", "", path_value),
        production=production,
        using_dev_app=using_dev_app,
        max_request_size=env.get("REVERB_MAX_REQUEST_SIZE", 1_000_000, int_value(1_024)),
        max_header_size=env.get("OVERTONE_MAX_HEADER_SIZE", 16_384, int_value(1_024)),
        http_timeout=env.get("OVERTONE_HTTP_TIMEOUT", 10.0, float_value(0.1)),
        keepalive_timeout=env.get("OVERTONE_KEEPALIVE_TIMEOUT", 60.0, float_value(0.1)),
        pong_timeout=env.get("OVERTONE_PONG_TIMEOUT", 30.0, float_value(0.1)),
        history_memory=env.get("OVERTONE_HISTORY_MEMORY", 64 * 1_048_576, int_value(65_536)),
        max_write_buffer=env.get("OVERTONE_MAX_WRITE_BUFFER", 1_048_576, int_value(16_384)),
        signature_window=env.get("OVERTONE_SIGNATURE_WINDOW", 600, int_value(1)),
        shutdown_timeout=env.get("OVERTONE_SHUTDOWN_TIMEOUT", 10.0, float_value(0.1)),
        tick_interval=env.get("OVERTONE_TICK_INTERVAL", 1.0, float_value(0.01)),
        workers=env.get("OVERTONE_WORKERS", 1, int_value(1)),
        metrics_token=env.raw("OVERTONE_METRICS_TOKEN"),
        dashboard_password=env.raw("OVERTONE_DASHBOARD_PASSWORD") or None,
        max_connections=env.get("OVERTONE_MAX_CONNECTIONS", None, int_value(1)),
        tls_cert=env.get("OVERTONE_TLS_CERT", None, readable_file),
        tls_key=env.get("OVERTONE_TLS_KEY", None, readable_file),
        log_format=env.get("OVERTONE_LOG_FORMAT", "text", log_format),
        pid_file=env.raw("OVERTONE_PID_FILE"),
        restart_stagger=env.get("OVERTONE_RESTART_STAGGER", 2.0, float_value(0)),
        http_fallback=env.get("OVERTONE_HTTP_FALLBACK", True, bool_value),
        http_fallback_path=env.get("OVERTONE_HTTP_FALLBACK_PATH", "/pusher", path_value),
        http_session_timeout=env.get("OVERTONE_HTTP_SESSION_TIMEOUT", 15.0, float_value(1)),
        http_poll_timeout=env.get("OVERTONE_HTTP_POLL_TIMEOUT", 25.0, float_value(0.5)),
        scaling=_scaling(env),
    )
    if settings.port > 65_535:
        raise ConfigError(f"REVERB_SERVER_PORT={settings.port} is not a valid port")
    changes = {k: v for k, v in overrides.items() if v is not None}
    if "path" in changes:
        changes["path"] = path_value("--path", changes["path"])
    settings = replace(settings, **changes)
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise ConfigError("OVERTONE_TLS_CERT and OVERTONE_TLS_KEY must be set together")
    if settings.workers > 1 and settings.scaling is None:
        raise ConfigError(
            f"--workers {settings.workers} needs the Redis broker to coordinate the workers: "
            "set REVERB_SCALING_ENABLED=true and REDIS_URL (or REDIS_HOST/REDIS_PORT)"
        )
    return settings


def _scaling(env: Env) -> Scaling | None:
    if not env.get("REVERB_SCALING_ENABLED", False, bool_value):
        return None
    url = env.raw("REDIS_URL")
    if url is None:
        scheme = env.get("REDIS_SCHEME", "tcp", str_value).lower()
        tls = scheme in ("tls", "rediss")
        host = env.get("REDIS_HOST", "127.0.0.1", str_value)
        port = env.get("REDIS_PORT", 6379, int_value(1))
        db = env.get("REDIS_DB", 0, int_value(0))
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
    heartbeat = env.get("OVERTONE_HEARTBEAT_INTERVAL", 5.0, float_value(0.05))
    timeout = env.get("OVERTONE_NODE_TIMEOUT", 15.0, float_value(0.1))
    if timeout <= heartbeat:
        raise ConfigError(
            f"OVERTONE_NODE_TIMEOUT={timeout} must be longer than "
            f"OVERTONE_HEARTBEAT_INTERVAL={heartbeat}"
        )
    scaling = Scaling(
        redis_url=url,
        channel=env.get("REVERB_SCALING_CHANNEL", "reverb", str_value),
        prefix=env.get("REDIS_PREFIX", "", str_value),
        heartbeat_interval=heartbeat,
        node_timeout=timeout,
        sentinels=env.get("OVERTONE_REDIS_SENTINELS", (), addresses),
        sentinel_master=env.get("OVERTONE_REDIS_SENTINEL_MASTER", "", str_value),
        sentinel_username=env.raw("OVERTONE_REDIS_SENTINEL_USERNAME"),
        sentinel_password=env.raw("OVERTONE_REDIS_SENTINEL_PASSWORD"),
        cluster_nodes=env.get("OVERTONE_REDIS_CLUSTER_NODES", (), addresses),
        tls_ca=env.get("OVERTONE_REDIS_TLS_CA", None, readable_file),
    )
    _check_redis_topology(scaling)
    return scaling


def _check_redis_topology(scaling: Scaling) -> None:
    """Sentinel and Redis Cluster settings that cannot work together."""
    if scaling.sentinels and scaling.cluster_nodes:
        raise ConfigError(
            "OVERTONE_REDIS_SENTINELS and OVERTONE_REDIS_CLUSTER_NODES are both set: "
            "a Redis is either watched by Sentinel or a Redis Cluster, choose one"
        )
    if scaling.sentinels and not scaling.sentinel_master:
        raise ConfigError(
            "OVERTONE_REDIS_SENTINELS is set but OVERTONE_REDIS_SENTINEL_MASTER is not: "
            "name the master the sentinels monitor (e.g. mymaster)"
        )
    if (scaling.sentinels or scaling.cluster_nodes) and scaling.redis_url.startswith("unix://"):
        raise ConfigError(
            "REDIS_URL=unix://... cannot reach a Redis found through "
            "OVERTONE_REDIS_SENTINELS or OVERTONE_REDIS_CLUSTER_NODES"
        )
    if scaling.cluster_nodes:
        db = urlsplit(scaling.redis_url).path.strip("/")
        if db not in ("", "0"):
            raise ConfigError(
                f"a Redis Cluster has only database 0, but the Redis database is {db} "
                "(REDIS_DB or the path of REDIS_URL)"
            )
        name = f"{scaling.prefix}{scaling.channel}"
        if not _has_hash_tag(name) and name.startswith("}"):
            raise ConfigError(
                f"REDIS_PREFIX/REVERB_SCALING_CHANNEL: {name!r} cannot start with '}}' "
                "on a Redis Cluster (it would break the hash tag of the channel)"
            )
