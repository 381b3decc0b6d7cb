"""The apps file (``OVERTONE_APPS_FILE``): several apps with per-app options, TOML or JSON."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from overtone.apps import App, RateLimit
from overtone.channels.history import HistoryLimits
from overtone.envvars import (
    ConfigError,
    bool_value,
    client_events,
    float_value,
    int_value,
    urls,
    webhook_events,
)

T = TypeVar("T")


_APP_FIELDS: dict[str, Callable[[str, str], Any]] = {
    "enabled": bool_value,
    "ping_interval": int_value(1),
    "activity_timeout": int_value(1),
    "max_connections": int_value(1),
    "max_message_size": int_value(64),
    "accept_client_events_from": client_events,
    "max_presence_members": int_value(1),
    "max_presence_user_info": int_value(1),
    "cache_ttl": float_value(1),
    "subscription_count": bool_value,
    "authorized_connections": bool_value,
    "authorization_timeout": float_value(1),
}
_HISTORY_FIELDS: dict[str, Callable[[str, str], Any]] = {
    "enabled": bool_value,
    "max_events": int_value(1),
    "ttl": float_value(1),
}
_RATE_FIELDS: dict[str, Callable[[str, str], Any]] = {
    "enabled": bool_value,
    "max_attempts": int_value(1),
    "decay_seconds": float_value(0.001),
    "terminate": bool_value,
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
            parse = urls if name == "webhook_urls" else webhook_events
            options[name] = parse(f"{where}.{name}", ",".join(value))
        elif name == "allowed_origins":
            if not isinstance(value, list) or not all(isinstance(o, str) for o in value):
                raise ConfigError(f"{where}.allowed_origins must be a list of strings")
            options["allowed_origins"] = tuple(value) or ("*",)
        elif name == "history":
            options["history"] = _history(where, value)
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


def _history(where: str, value: object) -> HistoryLimits:
    """``history = {enabled, max_events, ttl}`` of one app (missing keys: defaults)."""
    if isinstance(value, bool):
        return HistoryLimits(enabled=value)
    if not isinstance(value, dict):
        raise ConfigError(f"{where}.history must be a table/object or true/false")
    unknown = set(value) - set(_HISTORY_FIELDS)
    if unknown:
        raise ConfigError(f"{where}.history: unknown option(s) {sorted(unknown)}")
    return HistoryLimits(
        **{k: _typed(f"{where}.history.{k}", v, _HISTORY_FIELDS[k]) for k, v in value.items()}
    )


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
