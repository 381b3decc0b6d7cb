"""Tests for the hand-written WebSocket opening handshake, with ``websockets`` as the oracle."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.uri import parse_uri
from websockets.utils import accept_key as ws_accept_key

from overtone.protocol.connect import query_value
from overtone.protocol.frames import encode_frame
from overtone.protocol.handshake import (
    HandshakeError,
    accept_key,
    check_host,
    check_upgrade,
    response_101,
)

RFC_ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
PROXY_HINT = "proxy_set_header Upgrade $http_upgrade"


def good_headers(**overrides: bytes | None) -> dict[bytes, bytes]:
    headers: dict[bytes, bytes | None] = {
        b"host": b"localhost:8080",
        b"upgrade": b"websocket",
        b"connection": b"Upgrade",
        b"sec-websocket-key": b"dGhlIHNhbXBsZSBub25jZQ==",
        b"sec-websocket-version": b"13",
    }
    for name, value in overrides.items():
        headers[name.replace("_", "-").encode()] = value
    return {k: v for k, v in headers.items() if v is not None}


def error(
    headers: dict[bytes, bytes], method: bytes = b"GET", version: str = "1.1"
) -> HandshakeError:
    result = check_upgrade(method, version, headers)
    assert isinstance(result, HandshakeError)
    return result


def test_accept_key_rfc_6455_example() -> None:
    # RFC 6455 §1.3: the server answers "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" to the sample nonce.
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == RFC_ACCEPT
    assert check_upgrade(b"GET", "1.1", good_headers()) == RFC_ACCEPT


@given(st.binary(min_size=16, max_size=16))
def test_accept_key_agrees_with_websockets(nonce: bytes) -> None:
    key = base64.b64encode(nonce)
    assert accept_key(key) == ws_accept_key(key.decode()).encode()
    assert check_upgrade(b"GET", "1.1", good_headers(sec_websocket_key=key)) == accept_key(key)


def client_request_headers(request: Request) -> dict[bytes, bytes]:
    headers: dict[bytes, bytes] = {}
    for name, value in request.headers.raw_items():
        key = name.lower().encode()
        headers[key] = headers[key] + b", " + value.encode() if key in headers else value.encode()
    return headers


def test_websockets_client_completes_the_handshake() -> None:
    client = ClientProtocol(parse_uri("ws://localhost:8080/app/key?protocol=7"))
    request = client.connect()
    client.send_request(request)
    accept = check_upgrade(b"GET", "1.1", client_request_headers(request))
    assert isinstance(accept, bytes)
    # A frame right behind the 101 response, in the same TCP segment, must work too.
    client.receive_data(response_101(accept) + encode_frame(b'{"event":"x"}'))
    assert client.handshake_exc is None
    assert client.state is State.OPEN
    frames = [e for e in client.events_received() if isinstance(e, Frame)]
    assert [(f.opcode, bytes(f.data)) for f in frames] == [(Opcode.TEXT, b'{"event":"x"}')]


def test_response_101_bytes() -> None:
    assert response_101(RFC_ACCEPT) == (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    )


@pytest.mark.parametrize(
    ("version", "overrides"),
    [
        ("1.1", {"upgrade": b"WebSocket"}),
        ("1.1", {"upgrade": b"foo, websocket"}),
        ("1.1", {"connection": b"keep-alive, Upgrade"}),
        ("1.1", {"connection": b"upgrade"}),
        ("1.1", {"sec_websocket_version": b" 13 "}),
        ("1.1", {"sec_websocket_key": b" dGhlIHNhbXBsZSBub25jZQ== "}),
        ("HTTP/1.1", {}),
        ("2.0", {}),
    ],
)
def test_accepted_variants(version: str, overrides: dict[str, bytes]) -> None:
    result = check_upgrade(b"GET", version, good_headers(**overrides))
    assert result == RFC_ACCEPT


def test_method_must_be_get() -> None:
    err = error(good_headers(), method=b"POST")
    assert err.status == 405
    assert "GET" in err.message
    assert "POST" in err.message
    assert err.extra_headers == ((b"Allow", b"GET"),)


@pytest.mark.parametrize(("version", "status"), [("1.0", 505), ("0.9", 505), ("x", 400), ("", 400)])
def test_http_version(version: str, status: int) -> None:
    err = error(good_headers(), version=version)
    assert err.status == status
    assert "HTTP" in err.message


def test_host_header_is_required() -> None:
    err = error(good_headers(host=None))
    assert err.status == 400
    assert err.message == "missing 'Host' header; HTTP/1.1 requests must carry one"
    assert err.extra_headers == ()
    # Checked before the WebSocket headers: a bare HTTP/1.1 request is told about Host first.
    assert error({}).message == err.message
    assert check_upgrade(b"GET", "1.1", good_headers(host=b"")) == RFC_ACCEPT


@pytest.mark.parametrize(
    ("version", "headers", "refused"),
    [
        ("1.1", {}, True),
        ("HTTP/1.1", {}, True),
        ("1.1", {b"host": b"example.com"}, False),
        ("1.1", {b"host": b""}, False),
        ("1.0", {}, False),
        ("0.9", {}, False),
    ],
)
def test_check_host_for_any_request(
    version: str, headers: dict[bytes, bytes], refused: bool
) -> None:
    result = check_host(version, headers)
    assert (result is not None) == refused
    if result is not None:
        assert result.status == 400
        assert "'Host'" in result.message


@pytest.mark.parametrize("value", [None, b"h2c", b"", b"websocket2"])
def test_upgrade_header(value: bytes | None) -> None:
    err = error(good_headers(upgrade=value))
    assert err.status == 426
    assert "Upgrade" in err.message
    assert "websocket" in err.message
    assert PROXY_HINT in err.message
    assert (b"Upgrade", b"websocket") in err.extra_headers
    if value is None:
        assert err.message.startswith("missing 'Upgrade: websocket' header")
    else:
        assert repr(value.decode()) in err.message


@pytest.mark.parametrize("value", [None, b"keep-alive", b"close", b"upgraded"])
def test_connection_header(value: bytes | None) -> None:
    err = error(good_headers(connection=value))
    assert err.status == 400
    assert "Connection" in err.message
    assert PROXY_HINT in err.message


@pytest.mark.parametrize("value", [None, b"8", b"12", b"13, 8", b""])
def test_version_header(value: bytes | None) -> None:
    err = error(good_headers(sec_websocket_version=value))
    assert err.status == 426
    assert "Sec-WebSocket-Version" in err.message
    assert err.extra_headers == ((b"Sec-WebSocket-Version", b"13"),)


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"not base64!",
        base64.b64encode(b"x" * 15),
        base64.b64encode(b"x" * 17),
        b"dGhlIHNhbXBsZSBub25jZQ=!",
        b"dGhlIHNhbXBsZSBub25jZQ==, dGhlIHNhbXBsZSBub25jZQ==",  # header sent twice
    ],
)
def test_key_header(value: bytes | None) -> None:
    err = error(good_headers(sec_websocket_key=value))
    assert err.status == 400
    assert "Sec-WebSocket-Key" in err.message


def test_error_messages_do_not_echo_huge_header_values() -> None:
    err = error(good_headers(upgrade=b"x" * 10_000))
    assert len(err.message) < 400


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["protocol", "client", "version", "proto%63ol", "a+b", ""]),
            st.text(alphabet="0123456789abc%+=&", max_size=6),
        ),
        max_size=5,
    )
)
def test_query_value_agrees_with_parse_qs(pairs: list[tuple[str, str]]) -> None:
    query = "&".join(f"{key}={value}" for key, value in pairs)
    expected = parse_qs(query).get("protocol", [None])[-1]
    assert query_value(query, "protocol") == expected


def test_upgrade_tokens_are_found_in_any_case_and_list() -> None:
    for upgrade, connection in (
        (b"WebSocket", b"Upgrade"),
        (b"h2c, websocket", b"keep-alive, Upgrade"),
        (b"websocket ", b" upgrade"),
    ):
        headers = good_headers(upgrade=upgrade, connection=connection)
        assert isinstance(check_upgrade(b"GET", "1.1", headers), bytes), (upgrade, connection)
    refused = check_upgrade(b"GET", "1.1", good_headers(upgrade=b"websockets"))
    assert isinstance(refused, HandshakeError) and refused.status == 426
    refused = check_upgrade(b"GET", "HTTP/1.1", good_headers(connection=b"keep-alive"))
    assert isinstance(refused, HandshakeError) and refused.status == 400


@given(st.binary(min_size=0, max_size=24))
def test_key_check_agrees_with_base64_decoding(raw: bytes) -> None:
    """A key is accepted exactly when it is strict base64 of 16 bytes, as RFC 6455 asks."""
    key = base64.b64encode(raw)
    outcome = check_upgrade(b"GET", "1.1", good_headers(sec_websocket_key=key))
    assert isinstance(outcome, bytes) == (len(raw) == 16)


@pytest.mark.parametrize(
    "key",
    [
        b"dGhlIHNhbXBsZSBub25jZQ=",
        b"dGhlIHNhbXBsZSBub25jZQ=A",
        b"dGhlIHNhbXBsZSBub25jZ===",
        b"dGhlIHNhbXBsZSBub25jZQ-=",
    ],
)
def test_key_that_is_not_base64_of_16_bytes(key: bytes) -> None:
    err = error(good_headers(sec_websocket_key=key))
    assert err.status == 400 and "Sec-WebSocket-Key" in err.message
