"""``overtone deploy nginx``: the config passes ``nginx -t`` and really proxies overtone.

The live tests run nginx (as the current user, every path in ``tmp_path``) with TLS on a free
port of 127.0.0.1 in front of a real ``overtone start``, and drive it with pusher-js over
``wss://`` and the PyPI ``pusher`` SDK over ``https://``.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pusher
import pytest
from pusher.requests import RequestsBackend

from deploy.deploy_helpers import (
    binary,
    clean_env,
    cli,
    https,
    nginx_conf,
    nginx_test,
    self_signed,
    start_nginx,
    tls_context,
    until,
    websocket_handshake,
)
from e2e.e2e_helpers import Scenario
from support.servers import (
    APP_ID,
    APP_KEY,
    APP_SECRET,
    ServerProcess,
    free_port,
    scaled,
    start_server,
)

UPGRADE_LINE = "proxy_set_header Upgrade $http_upgrade;"


def write_env(directory: Path, port: int, **extra: str) -> Path:
    """The ``.env`` the deploy command reads: overtone's bind address and extras."""
    env = directory / ".env"
    lines = {"REVERB_SERVER_HOST": "0.0.0.0", "REVERB_SERVER_PORT": str(port), **extra}
    env.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
    return env


def generate(tmp_path: Path, env: Path, *flags: str) -> str:
    result = cli("deploy", "nginx", "--env-file", str(env), "--server-name", "localhost", *flags)
    assert result.code == 0, result.err
    return result.out


def tls_flags(tmp_path: Path, port: int) -> list[str]:
    cert, key = self_signed(tmp_path)
    return ["--listen", f"127.0.0.1:{port}", "--ssl-cert", str(cert), "--ssl-key", str(key)]


def start_overtone(tmp_path: Path, extra_env: dict[str, str] | None = None) -> ServerProcess:
    """``overtone start`` in its own directory (the deploy tests' .env is not its .env)."""
    workdir = tmp_path / "overtone"
    workdir.mkdir()
    return start_server(workdir, extra_env)


@pytest.fixture
def overtone(tmp_path: Path) -> Iterator[ServerProcess]:
    server = start_overtone(tmp_path)
    yield server
    server.stop()


class _TrustingBackend(RequestsBackend):  # type: ignore[misc]
    """The SDK's requests backend verifying against the test certificate, not its bundle."""

    cafile = ""

    def __init__(self, client: Any, **options: Any) -> None:
        super().__init__(client, **options)
        self.options["verify"] = self.cafile


@pytest.mark.parametrize(
    "variant",
    ["tls", "plain", "path-prefix", "locations-only", "locations-only-with-path"],
)
def test_generated_config_passes_nginx_t(tmp_path: Path, variant: str) -> None:
    binary("nginx")
    extra = {"REVERB_SERVER_PATH": "/ws"} if "path" in variant else {}
    env = write_env(tmp_path, 8080, REVERB_MAX_REQUEST_SIZE="5000000", **extra)
    flags = tls_flags(tmp_path, 8443) if variant in ("tls", "path-prefix") else []
    if variant.startswith("locations-only"):
        flags = ["--locations-only"]
    config = generate(tmp_path, env, *flags)
    generated = tmp_path / "generated.conf"
    generated.write_text(config)
    server = "listen 127.0.0.1:1; server_name test;" if "only" in variant else None
    checked = nginx_test(nginx_conf(tmp_path, generated, server))
    assert checked.returncode == 0, f"{checked.stderr}\n{config}"
    assert "test is successful" in checked.stderr
    prefix = "/ws" if extra else ""
    assert f"location ^~ {prefix}/app/ {{" in config
    assert f"location ^~ {prefix}/apps/ {{" in config
    assert "proxy_pass http://127.0.0.1:8080;" in config  # 0.0.0.0 -> loopback
    assert UPGRADE_LINE in config and 'proxy_set_header Connection "upgrade";' in config
    assert "proxy_http_version 1.1;" in config and "proxy_buffering off;" in config
    assert "proxy_read_timeout 120s;" in config
    assert "client_max_body_size 6m;" in config  # above REVERB_MAX_REQUEST_SIZE=5000000
    assert "map " not in config
    if variant == "tls":
        assert re.search(r"listen 127\.0\.0\.1:8443 ssl;", config)
    if variant == "plain":
        assert "listen 80;" in config and "ssl_certificate" not in config
    if variant == "locations-only":  # Laravel's own /up and /dashboard stay Laravel's
        assert "server {" not in config and "location = /up" not in config
        assert "location ^~ /dashboard" not in config and "SSH tunnel" in config
    else:
        dashboard = config.partition(f"location ^~ {prefix}/dashboard {{")[2].partition("}")[0]
        assert "proxy_buffering off;" in dashboard and "proxy_read_timeout 1h;" in dashboard
        assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in dashboard
        assert "# deny all;" in dashboard  # restricting by address is offered, commented
    if variant == "locations-only-with-path":
        assert "location = /ws/up {" in config


def test_tls_proxy_with_pusher_js_and_the_python_sdk(
    tmp_path: Path, overtone: ServerProcess
) -> None:
    binary("node")
    port = free_port()
    env = write_env(tmp_path, overtone.port)  # upstream taken from the .env
    config = generate(tmp_path, env, *tls_flags(tmp_path, port))
    cert = tmp_path / "cert.pem"
    proxy = start_nginx(tmp_path, config, port)
    try:
        status, _, body = https(port, cert, "GET", "/up")
        assert (status, json.loads(body)) == (200, {"health": "OK"}), proxy.error_log()
        via_proxy = replace(overtone, port=port)
        node_env = {"NODE_EXTRA_CA_CERTS": str(cert)}
        _TrustingBackend.cafile = str(cert)
        sdk = pusher.Pusher(
            app_id=overtone.app_id,
            key=overtone.key,
            secret=overtone.secret,
            host="127.0.0.1",
            port=port,
            ssl=True,
            timeout=int(scaled(5)),
            backend=_TrustingBackend,
        )
        try:
            with Scenario(via_proxy, "tls_proxy", node_env) as run:
                ready = run.wait_stage("ready")
                assert sdk.trigger(ready["channel"], "proxied", {"through": "nginx"}) == {}
                channels = sdk.channels_info()
                run.resume("ready")
                result = run.finish()
        finally:
            sdk._pusher_client.http.session.close()
    finally:
        proxy.stop()
    assert result["event"] == {
        "channel": "deploy-news",
        "event": "proxied",
        "data": {"through": "nginx"},
    }
    assert result["state"] == "connected"
    assert result["url"].startswith(f"wss://127.0.0.1:{port}/app/{overtone.key}?")
    assert channels == {"channels": {"deploy-news": {}}}
    # Both the WebSocket (101) and the API calls went through nginx.
    access = proxy.access_log()
    assert re.search(rf'"GET /app/{overtone.key}\?[^"]*" 101 ', access), access
    assert re.search(rf'"POST /apps/{overtone.app_id}/events\?[^"]*" 200 ', access), access
    assert "Traceback" not in overtone.log()


def test_without_the_upgrade_header_the_handshake_fails_with_426(
    tmp_path: Path, overtone: ServerProcess
) -> None:
    binary("nginx")
    port = free_port()
    env = write_env(tmp_path, overtone.port)
    good = generate(tmp_path, env, *tls_flags(tmp_path, port))
    assert good.count(UPGRADE_LINE) == 1
    cert = tmp_path / "cert.pem"
    target = f"/app/{overtone.key}?protocol=7&client=js&version=8.6.0"
    proxy = start_nginx(tmp_path, good, port)
    try:
        assert websocket_handshake(port, cert, target)[0] == 101
    finally:
        proxy.stop()
    broken = good.replace(UPGRADE_LINE, "# Upgrade header not forwarded")
    proxy = start_nginx(tmp_path, broken, port)
    try:
        status, body = websocket_handshake(port, cert, target)
    finally:
        proxy.stop()
    assert status == 426, body
    message = json.loads(body)
    text = json.dumps(message)
    assert "Upgrade" in text and "proxy_set_header Upgrade $http_upgrade" in text, message


def test_locations_inside_an_existing_laravel_server_block(
    tmp_path: Path, overtone: ServerProcess
) -> None:
    binary("nginx")
    port = free_port()
    cert, key = self_signed(tmp_path)
    env = write_env(tmp_path, overtone.port)
    laravel = (  # a stand-in for the server block that already serves the Laravel app
        f"listen 127.0.0.1:{port} ssl; server_name localhost;\n"
        f"ssl_certificate {cert}; ssl_certificate_key {key};\n"
        "location / { default_type text/plain; return 200 'laravel'; }\n"
        "location ~ \\.php$ { default_type text/plain; return 200 'php'; }\n"
    )
    proxy = start_nginx(tmp_path, generate(tmp_path, env, "--locations-only"), port, laravel)
    try:
        handshake = websocket_handshake(port, cert, f"/app/{overtone.key}?protocol=7")
        api = https(port, cert, "GET", f"/apps/{overtone.app_id}/channels")
        laravel_up = https(port, cert, "GET", "/up")
    finally:
        proxy.stop()
    assert handshake[0] == 101
    assert api[0] == 401 and "auth_key" in json.loads(api[2])["error"]  # overtone answered
    assert laravel_up[0] == 200 and laravel_up[2] == b"laravel"  # Laravel keeps its /up


def test_path_prefix_is_proxied_as_is(tmp_path: Path) -> None:
    binary("nginx")
    server = start_overtone(tmp_path, {"REVERB_SERVER_PATH": "/ws"})
    try:
        port = free_port()
        env = write_env(tmp_path, server.port, REVERB_SERVER_PATH="/ws")
        proxy = start_nginx(tmp_path, generate(tmp_path, env, *tls_flags(tmp_path, port)), port)
        cert = tmp_path / "cert.pem"
        try:
            status, _, body = https(port, cert, "GET", "/ws/up")
            handshake = websocket_handshake(port, cert, f"/ws/app/{server.key}?protocol=7")
            unprefixed = https(port, cert, "GET", "/up")
        finally:
            proxy.stop()
    finally:
        server.stop()
    assert (status, json.loads(body)) == (200, {"health": "OK"})
    assert handshake[0] == 101
    assert unprefixed[0] == 404 and unprefixed[1]["content-type"] == "application/json"


def test_json_error_when_overtone_is_down(tmp_path: Path) -> None:
    binary("nginx")
    port = free_port()
    env = write_env(tmp_path, free_port())  # nothing listens there
    proxy = start_nginx(tmp_path, generate(tmp_path, env, *tls_flags(tmp_path, port)), port)
    cert = tmp_path / "cert.pem"
    try:
        answers = [
            https(port, cert, "GET", "/up"),
            https(port, cert, "POST", "/apps/1/events?auth_key=k", b'{"name":"e"}'),
        ]
    finally:
        proxy.stop()
    for status, headers, body in answers:
        assert status == 503, body
        assert headers["content-type"] == "application/json"
        assert "overtone is not answering" in json.loads(body)["error"]


def test_overtone_serving_tls_itself_is_proxied_over_https(tmp_path: Path) -> None:
    binary("nginx")
    cert, key = self_signed(tmp_path)
    backend, port = free_port(), free_port()
    tls = {"OVERTONE_TLS_CERT": str(cert), "OVERTONE_TLS_KEY": str(key)}
    env = write_env(tmp_path, backend, **tls)
    flags = ["--listen", f"127.0.0.1:{port}", "--ssl-cert", str(cert), "--ssl-key", str(key)]
    config = generate(tmp_path, env, *flags)
    assert f"proxy_pass https://127.0.0.1:{backend};" in config
    workdir = tmp_path / "overtone"
    workdir.mkdir()
    variables = {
        "REVERB_APP_ID": APP_ID,
        "REVERB_APP_KEY": APP_KEY,
        "REVERB_APP_SECRET": APP_SECRET,
    }
    address = {"REVERB_SERVER_HOST": "127.0.0.1", "REVERB_SERVER_PORT": str(backend)}
    server_env = {**clean_env(), **variables, **tls, **address}
    with (workdir / "overtone.log").open("wb") as log:
        command = [sys.executable, "-m", "overtone", "start"]
        server = subprocess.Popen(command, cwd=workdir, env=server_env, stdout=log, stderr=log)
    try:
        until("overtone over TLS", lambda: https(backend, cert, "GET", "/up")[0] == 200)
        proxy = start_nginx(tmp_path, config, port)
        try:
            status, _, body = https(port, cert, "GET", "/up")
            handshake = websocket_handshake(port, cert, f"/app/{APP_KEY}?protocol=7")
        finally:
            proxy.stop()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(scaled(15))
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert (status, json.loads(body)) == (200, {"health": "OK"})
    assert handshake[0] == 101


DASHBOARD_PASSWORD = "a-long-dashboard-password"


def basic(password: str) -> str:
    return "Basic " + base64.b64encode(f"overtone:{password}".encode()).decode()


def overview_events(port: int, cert: Path, wanted: int, within: float) -> list[float]:
    """Seconds after the request at which each of the feed's first ``overview`` events came."""
    conn = http.client.HTTPSConnection(
        "127.0.0.1", port, context=tls_context(cert), timeout=scaled(within)
    )
    try:
        started = time.monotonic()
        headers = {"Authorization": basic(DASHBOARD_PASSWORD)}
        conn.request("GET", "/dashboard/api/feed", headers=headers)
        answer = conn.getresponse()
        assert answer.status == 200, answer.read()
        assert answer.getheader("content-type", "").startswith("text/event-stream")
        seen: list[float] = []
        text = b""
        while len(seen) < wanted and time.monotonic() - started < scaled(within):
            chunk = answer.read1(65536)
            if not chunk:
                break
            text += chunk
            seen += [time.monotonic() - started] * (text.count(b"event: overview") - len(seen))
        return seen
    finally:
        conn.close()


def test_dashboard_feed_streams_through_nginx(tmp_path: Path) -> None:
    binary("nginx")
    server = start_overtone(tmp_path, {"OVERTONE_DASHBOARD_PASSWORD": DASHBOARD_PASSWORD})
    try:
        port = free_port()
        env = write_env(tmp_path, server.port)
        proxy = start_nginx(tmp_path, generate(tmp_path, env, *tls_flags(tmp_path, port)), port)
        cert = tmp_path / "cert.pem"
        try:
            # The first event within 2 s, then one a second as overtone sends them.
            events = overview_events(port, cert, wanted=3, within=5)
            overview = https(port, cert, "GET", "/dashboard/api/overview")
            page = https(port, cert, "GET", "/dashboard/")
        finally:
            proxy.stop()
    finally:
        server.stop()
    assert len(events) == 3, (events, proxy.error_log())
    assert events[0] < scaled(2), events
    assert events[2] - events[0] > 0.8, events  # arrived one by one, not held back
    assert overview[0] == 401 and "basic" in overview[1]["www-authenticate"].lower()
    assert page[0] == 401
    access = proxy.access_log()
    assert re.search(r'"GET /dashboard/api/feed HTTP/1.1" 200 ', access), access
    assert "Traceback" not in server.log()


def test_dashboard_failures_are_counted_per_client_behind_nginx(tmp_path: Path) -> None:
    """A client cannot escape the failed-login limit with its own X-Forwarded-For."""
    binary("nginx")
    server = start_overtone(tmp_path, {"OVERTONE_DASHBOARD_PASSWORD": DASHBOARD_PASSWORD})
    try:
        port = free_port()
        env = write_env(tmp_path, server.port)
        proxy = start_nginx(tmp_path, generate(tmp_path, env, *tls_flags(tmp_path, port)), port)
        cert = tmp_path / "cert.pem"
        statuses = []
        try:
            for attempt in range(6):
                conn = http.client.HTTPSConnection(
                    "127.0.0.1", port, context=tls_context(cert), timeout=5
                )
                try:
                    conn.request(
                        "GET",
                        "/dashboard/api/overview",
                        headers={
                            "Authorization": basic("wrong"),
                            "X-Forwarded-For": f"198.51.100.{attempt}",
                        },
                    )
                    answer = conn.getresponse()
                    answer.read()
                    statuses.append((answer.status, answer.getheader("retry-after")))
                finally:
                    conn.close()
        finally:
            proxy.stop()
    finally:
        server.stop()
    assert [status for status, _ in statuses] == [401] * 5 + [429], statuses
    assert int(statuses[-1][1] or 0) > 0
