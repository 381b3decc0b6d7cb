"""Who may use the dashboard: Basic credentials, throttled failures, the action guard."""

from __future__ import annotations

import base64

from overtone.dashboard.access import (
    MAX_FAILURES,
    WINDOW,
    Gate,
    client_address,
    credentials_match,
    same_origin,
)

PASSWORD = "correct horse battery"


def basic(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


def test_only_the_overtone_user_with_the_password_matches() -> None:
    assert credentials_match(basic("overtone", PASSWORD), PASSWORD)
    assert credentials_match(b"basic " + basic("overtone", PASSWORD)[6:], PASSWORD)
    assert not credentials_match(basic("admin", PASSWORD), PASSWORD)
    assert not credentials_match(basic("overtone", PASSWORD + "x"), PASSWORD)
    assert not credentials_match(basic("overtone", ""), PASSWORD)
    assert not credentials_match(b"Basic " + base64.b64encode(b"overtone"), PASSWORD)
    assert not credentials_match(b"Basic %%%not-base64", PASSWORD)
    assert not credentials_match(b"Bearer " + PASSWORD.encode(), PASSWORD)
    assert not credentials_match(None, PASSWORD)


def test_a_password_with_a_colon_works() -> None:
    assert credentials_match(basic("overtone", "a:b:c"), "a:b:c")


def test_repeated_failures_turn_an_address_away_for_the_window() -> None:
    gate = Gate(PASSWORD)
    first = gate.check(None, "203.0.113.9", 0.0)
    assert first is not None and first.status == 401  # a first visit is not a failure
    for i in range(MAX_FAILURES):
        refusal = gate.check(basic("overtone", f"guess{i}"), "203.0.113.9", 1.0 + i)
        assert refusal is not None and refusal.status == 401
    locked = gate.check(basic("overtone", PASSWORD), "203.0.113.9", 10.0)
    assert locked is not None and locked.status == 429
    assert 0 < locked.retry_after <= WINDOW + 1
    # Another address is not affected; the locked one is let in once the window passed.
    assert gate.check(basic("overtone", PASSWORD), "198.51.100.7", 10.0) is None
    assert gate.check(basic("overtone", PASSWORD), "203.0.113.9", 1.0 + WINDOW + 5) is None


def test_a_success_clears_the_failures_of_an_address() -> None:
    gate = Gate(PASSWORD)
    for i in range(MAX_FAILURES - 1):
        gate.check(basic("overtone", "nope"), "192.0.2.1", float(i))
    assert gate.check(basic("overtone", PASSWORD), "192.0.2.1", 5.0) is None
    for i in range(MAX_FAILURES - 1):
        gate.check(basic("overtone", "nope"), "192.0.2.1", 6.0 + i)
    assert gate.check(basic("overtone", PASSWORD), "192.0.2.1", 11.0) is None


def test_the_address_behind_a_proxy_is_the_last_forwarded_hop() -> None:
    assert client_address("127.0.0.1", b"10.9.9.9, 203.0.113.5") == "203.0.113.5"
    assert client_address("10.0.0.2", b"203.0.113.5") == "203.0.113.5"
    # From the open internet the header proves nothing.
    assert client_address("93.184.216.34", b"203.0.113.5") == "93.184.216.34"
    assert client_address("127.0.0.1", None) == "127.0.0.1"
    assert client_address(None, b"203.0.113.5") == "?"


def test_actions_must_come_from_the_same_host() -> None:
    assert same_origin(None, b"example.com")
    assert same_origin(b"https://example.com", b"example.com")
    assert same_origin(b"https://example.com:8443", b"example.com")  # proxy dropped the port
    assert same_origin(b"http://[::1]:8080", b"[::1]:8080")
    assert not same_origin(b"https://evil.example", b"example.com")
    assert not same_origin(b"null", b"example.com")
    assert not same_origin(b"https://example.com", None)
