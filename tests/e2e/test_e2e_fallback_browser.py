"""Headless Chromium behind a real nginx that refuses WebSocket upgrades: pusher-js with its
default transports falls back to HTTP by itself and gets every event; once through a plain
proxy, once through the ``overtone deploy nginx`` locations served over TLS."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from deploy.deploy_helpers import Nginx, binary, cli, self_signed, start_nginx
from e2e.e2e_helpers import CHROMIUM, Scenario, python_sdk
from support.servers import ServerProcess, free_port, start_server

pytestmark = pytest.mark.e2e

REFUSE_UPGRADES = "if ($http_upgrade) { return 403; }  # a proxy that refuses WebSockets"


@pytest.fixture
def overtone(tmp_path: Path) -> Iterator[ServerProcess]:
    workdir = tmp_path / "overtone"
    workdir.mkdir()
    server = start_server(workdir)
    yield server
    server.stop()


def run_page(overtone: ServerProcess, proxy_port: int, tls: bool) -> dict[str, object]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    via_proxy = replace(overtone, port=proxy_port)
    env = {"OVERTONE_TLS": "1"} if tls else {}
    with python_sdk(overtone) as sdk, Scenario(via_proxy, "fallback_browser", env) as run:
        ready = run.wait_stage("subscribed", timeout=45)
        sdk.trigger(ready["channel"], "headline", {"title": "first"})
        sdk.trigger(ready["channel"], "headline", {"title": "second"})
        run.resume("subscribed")
        return run.finish(timeout=60)


def check_fell_back(result: dict[str, object], proxy: Nginx) -> None:
    assert result["state"] == "connected", result
    assert result["transport"] in ("xhr_streaming", "xhr_polling"), result
    assert result["headlines"] == ["first", "second"]
    assert result["problems"] == []
    timings = result["timings"]
    assert isinstance(timings, dict) and timings["first_event"] >= timings["subscribed"]
    print(f"\nfallback through nginx: {result['transport']}, ms from new Pusher(): {timings}")
    access = proxy.access_log()
    assert "/app/test-key?protocol=7&client=js&version=8." in access  # the refused WebSocket
    assert " 403 " in access and "/pusher/app/test-key/" in access
    assert '"OPTIONS /pusher/app/' in access  # the page is on another origin: preflights


def test_chromium_falls_back_behind_a_proxy_refusing_websockets(
    tmp_path: Path, overtone: ServerProcess
) -> None:
    binary("nginx")
    port = free_port()
    server = "\n".join(
        [
            f"listen 127.0.0.1:{port};",
            f"location / {{ {REFUSE_UPGRADES}",
            f"    proxy_pass http://127.0.0.1:{overtone.port};",
            '    proxy_http_version 1.1; proxy_set_header Connection "";',
            "    proxy_buffering off; proxy_read_timeout 120s; }",
        ]
    )
    proxy = start_nginx(tmp_path, "", port, server)
    try:
        result = run_page(overtone, port, tls=False)
    finally:
        proxy.stop()
    check_fell_back(result, proxy)
    assert "Traceback" not in overtone.log()


def test_chromium_falls_back_through_the_generated_tls_config(
    tmp_path: Path, overtone: ServerProcess
) -> None:
    binary("nginx")
    port = free_port()
    env = tmp_path / ".env"
    env.write_text(f"REVERB_SERVER_HOST=127.0.0.1\nREVERB_SERVER_PORT={overtone.port}\n")
    flags = ("--server-name", "localhost", "--locations-only")
    generated = cli("deploy", "nginx", "--env-file", str(env), *flags)
    assert generated.code == 0, generated.err
    assert "proxy_buffering off;" in generated.out and "/pusher/app/" in generated.out
    cert, key = self_signed(tmp_path)
    server = "\n".join(
        [
            f"listen 127.0.0.1:{port} ssl;",
            f"ssl_certificate {cert}; ssl_certificate_key {key};",
            REFUSE_UPGRADES,
        ]
    )
    proxy = start_nginx(tmp_path, generated.out, port, server)
    try:
        result = run_page(overtone, port, tls=True)
    finally:
        proxy.stop()
    check_fell_back(result, proxy)
    assert "Traceback" not in overtone.log()
