"""``/overtone/recovery.js``: the client add-on served by the server itself, unsigned."""

from __future__ import annotations

from importlib import resources

import pytest

from overtone.server import Server
from support.http import request
from support.inprocess import start

ADD_ON = resources.files("overtone").joinpath("static", "recovery.js").read_bytes()


async def test_get_serves_the_add_on_with_cache_headers(live: Server) -> None:
    status, headers, body = await request(live.port, b"GET /overtone/recovery.js HTTP/1.1")
    assert status == 200
    assert body == ADD_ON
    assert b"OvertoneRecovery" in body
    assert headers["content-type"] == "application/javascript; charset=utf-8"
    assert headers["cache-control"] == "public, max-age=3600"
    assert headers["content-length"] == str(len(ADD_ON))
    etag = headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 10
    # The same bytes, the same tag; HEAD answers the headers only.
    again = await request(live.port, b"GET /overtone/recovery.js?v=1 HTTP/1.1")
    assert again[0] == 200 and again[1]["etag"] == etag and again[2] == ADD_ON
    status, headers, body = await request(live.port, b"HEAD /overtone/recovery.js HTTP/1.1")
    assert (status, body) == (200, b"")
    assert headers["etag"] == etag
    assert headers["content-type"] == "application/javascript; charset=utf-8"


async def test_other_methods_and_the_api_keep_their_json_answers(live: Server) -> None:
    status, headers, body = await request(live.port, b"POST /overtone/recovery.js HTTP/1.1")
    assert status == 405
    assert headers["content-type"] == "application/json"
    assert b'"error"' in body
    status, headers, body = await request(live.port, b"GET /up HTTP/1.1")
    assert (status, body) == (200, b'{"health":"OK"}')
    assert headers["content-type"] == "application/json"
    assert "etag" not in headers and "cache-control" not in headers


@pytest.mark.parametrize(("path", "expected"), [("/ws/overtone/recovery.js", 200)])
async def test_served_under_the_path_prefix(path: str, expected: int) -> None:
    server = await start(REVERB_SERVER_PATH="/ws")
    try:
        status, headers, body = await request(server.port, f"GET {path} HTTP/1.1".encode())
    finally:
        await server.shutdown()
    assert status == expected
    assert body == ADD_ON
    assert headers["cache-control"] == "public, max-age=3600"


async def test_a_cached_copy_is_revalidated_without_its_body(live: Server) -> None:
    etag = (await request(live.port, b"GET /overtone/recovery.js HTTP/1.1"))[1]["etag"]
    get = b"GET /overtone/recovery.js HTTP/1.1\r\nIf-None-Match: "
    status, headers, body = await request(live.port, get + etag.encode())
    assert (status, body) == (304, b"")
    assert headers["etag"] == etag
    assert headers["cache-control"] == "public, max-age=3600"
    assert (await request(live.port, get + b'"other", ' + etag.encode()))[0] == 304
    stale = await request(live.port, get + b'"an-older-version"')
    assert (stale[0], stale[2]) == (200, ADD_ON)
