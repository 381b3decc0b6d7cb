"""Who may use the dashboard: HTTP Basic authentication, throttled failures, action guard.

Pure apart from the clock value passed in. The user is always ``overtone``; user and
password are both compared in constant time, whatever their lengths, so a response's timing
says nothing about how much of a guess was right.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from dataclasses import dataclass

USER = "overtone"
REALM = b'Basic realm="overtone dashboard", charset="UTF-8"'
MAX_FAILURES = 5
"""Failed attempts from one address within :data:`WINDOW` before it is turned away."""
WINDOW = 60.0
"""Seconds over which failures are counted, and for which an address is turned away."""
MAX_TRACKED = 10_000
"""Addresses whose failures are remembered at once (the oldest are forgotten first)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request was not let in: 401 (credentials) or 429 (too many failures)."""

    status: int
    message: str
    retry_after: int = 0


def credentials_match(authorization: bytes | None, password: str) -> bool:
    """Whether an ``Authorization: Basic`` header carries ``overtone`` and ``password``."""
    if authorization is None or authorization[:6].lower() != b"basic ":
        return False
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    user, sep, given = decoded.partition(b":")
    user_ok = hmac.compare_digest(user, USER.encode())
    password_ok = hmac.compare_digest(given, password.encode())
    return bool(sep) and user_ok and password_ok


def client_address(peer: str | None, forwarded_for: bytes | None) -> str:
    """The address failures are counted against.

    A request from a loopback or private address that carries ``X-Forwarded-For`` came
    through a reverse proxy (nginx, a load balancer): the last entry, which that proxy
    appended, is the client. Otherwise it is the peer itself (a header from the open
    internet proves nothing).
    """
    address = peer or "?"
    if forwarded_for is None or peer is None:
        return address
    try:
        proxied = ipaddress.ip_address(peer)
    except ValueError:
        return address
    if not (proxied.is_loopback or proxied.is_private):
        return address
    last = forwarded_for.decode("latin-1").rsplit(",", 1)[-1].strip()
    return last or address


class Gate:
    """Checks credentials and turns away addresses that keep failing."""

    def __init__(self, password: str) -> None:
        self.password = password
        self.failures: dict[str, list[float]] = {}

    def check(self, authorization: bytes | None, address: str, now: float) -> Refusal | None:
        """``None`` when the request may go on, else the refusal to answer."""
        recent = [t for t in self.failures.get(address, ()) if now - t < WINDOW]
        if len(recent) >= MAX_FAILURES:
            self.failures[address] = recent
            wait = max(1, int(WINDOW - (now - recent[0])) + 1)
            return Refusal(429, f"Too many failed logins from {address}; retry later", wait)
        if credentials_match(authorization, self.password):
            self.failures.pop(address, None)
            return None
        if authorization is not None:  # a first visit without credentials is not a failure
            recent.append(now)
            self.failures.pop(address, None)
            self.failures[address] = recent
            if len(self.failures) > MAX_TRACKED:
                del self.failures[next(iter(self.failures))]
        return Refusal(401, "The dashboard needs the user 'overtone' and its password")


def same_origin(origin: bytes | None, host: bytes | None) -> bool:
    """Whether a browser's ``Origin`` (when sent) names the host the request went to."""
    if origin is None:
        return True
    if host is None:
        return False
    _, _, authority = origin.partition(b"://")
    return _hostname(authority) == _hostname(host)


def _hostname(authority: bytes) -> bytes:
    """The host of ``host[:port]`` or ``[v6]:port``, lower-cased (a proxy may drop the
    port from ``Host``)."""
    authority = authority.strip().lower()
    if authority.startswith(b"["):
        return authority.partition(b"]")[0] + b"]"
    return authority.partition(b":")[0]
