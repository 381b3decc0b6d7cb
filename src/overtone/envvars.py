"""Reading variables: the error type, Laravel's empty/``null`` rule, and typed parsers.

Every parser takes ``(name, value)`` and raises :class:`ConfigError` with a message that
names the variable and says what is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from overtone.apps import WEBHOOK_EVENTS, ClientEventsFrom

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration problem; the message names the variable and what is wrong."""


class Env:
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


def int_value(minimum: int) -> Callable[[str, str], int]:
    def parse(name: str, value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r} is not an integer") from None
        if number < minimum:
            raise ConfigError(f"{name}={number} must be at least {minimum}")
        return number

    return parse


def float_value(minimum: float) -> Callable[[str, str], float]:
    def parse(name: str, value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r} is not a number") from None
        if not number >= minimum:
            raise ConfigError(f"{name}={number} must be at least {minimum}")
        return number

    return parse


def bool_value(name: str, value: str) -> bool:
    lowered = value.lower().strip("()")
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={value!r} is not a boolean (use true or false)")


def str_value(name: str, value: str) -> str:
    return value


def client_events(name: str, value: str) -> ClientEventsFrom:
    try:
        return ClientEventsFrom(value.lower())
    except ValueError:
        choices = ", ".join(c.value for c in ClientEventsFrom)
        raise ConfigError(f"{name}={value!r} must be one of: {choices}") from None


def origins(name: str, value: str) -> tuple[str, ...]:
    origins = tuple(o.strip() for o in value.split(",") if o.strip())
    if not origins:
        raise ConfigError(f"{name} must list at least one origin (or *)")
    return origins


def readable_file(name: str, value: str) -> str:
    if not Path(value).is_file():
        raise ConfigError(f"{name}={value!r}: no such file")
    return value


def log_format(name: str, value: str) -> str:
    if value.lower() not in ("text", "json"):
        raise ConfigError(f"{name}={value!r} must be text or json")
    return value.lower()


def urls(name: str, value: str) -> tuple[str, ...]:
    urls = tuple(u.strip() for u in value.split(",") if u.strip())
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{name}: {url!r} is not an http:// or https:// URL")
    return urls


def webhook_events(name: str, value: str) -> frozenset[str]:
    names = frozenset(n.strip() for n in value.split(",") if n.strip())
    unknown = names - WEBHOOK_EVENTS
    if unknown:
        choices = ", ".join(sorted(WEBHOOK_EVENTS))
        raise ConfigError(f"{name}: unknown event(s) {sorted(unknown)}; use: {choices}")
    return names


def path_value(name: str, value: str) -> str:
    path = "/" + value.strip("/")
    return "" if path == "/" else path


def addresses(name: str, value: str) -> tuple[tuple[str, int], ...]:
    """A comma-separated list of ``host:port`` (IPv6 as ``[::1]:6379``), at least one."""
    found: list[tuple[str, int]] = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65_536:
            raise ConfigError(f"{name}: {item!r} is not host:port")
        found.append((host, int(port)))
    if not found:
        raise ConfigError(f"{name} must list at least one host:port")
    return tuple(found)
