"""``overtone doctor``: the checklist, and the live probe against real failure shapes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from overtone.doctor import config_checks
from overtone.doctor.report import Status
from support.servers import (
    APP_ID,
    APP_KEY,
    APP_SECRET,
    ServerProcess,
    free_port,
    scaled,
    start_server,
)


def doctor(tmp_path: Path, env_text: str, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "doctor.env").write_text(env_text)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("REVERB_", "OVERTONE_"))}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "overtone",
            "doctor",
            "--env-file",
            str(tmp_path / "doctor.env"),
            "--timeout",
            "3",
            *args,
        ],
        env=clean,
        capture_output=True,
        text=True,
        timeout=scaled(60),
        check=False,
    )


def good_env(port: int, **changes: str) -> str:
    values = {
        "REVERB_APP_ID": APP_ID,
        "REVERB_APP_KEY": APP_KEY,
        "REVERB_APP_SECRET": APP_SECRET + "-but-long-enough",
        "REVERB_HOST": "127.0.0.1",
        "REVERB_PORT": str(port),
        "REVERB_SCHEME": "http",
        "REVERB_SERVER_HOST": "127.0.0.1",
        "REVERB_SERVER_PORT": str(port),
        "BROADCAST_CONNECTION": "reverb",
    }
    values.update(changes)
    return "".join(f"{k}={v}\n" for k, v in values.items())


@pytest.fixture
def strong(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = start_server(tmp_path, {"REVERB_APP_SECRET": APP_SECRET + "-but-long-enough"})
    yield proc
    proc.stop()


def test_misconfigured_env_fails_with_hints(tmp_path: Path) -> None:
    result = doctor(
        tmp_path,
        "APP_ENV=production\nREVERB_APP_ID=1\nREVERB_APP_KEY=k\nREVERB_APP_SECRET=secret\n"
        "REVERB_HOST=0.0.0.0\nREVERB_PORT=8080\nREVERB_SCHEME=https\nBROADCAST_CONNECTION=log\n",
    )
    assert result.returncode == 1
    out = result.stdout
    assert "[FAIL] secret strength" in out
    assert "[FAIL] public host: REVERB_HOST=0.0.0.0 in production" in out
    assert "[FAIL] scheme and port" in out and "REVERB_PORT=443" in out
    assert "[warn] BROADCAST_CONNECTION" in out


def test_probe_passes_against_a_healthy_server(tmp_path: Path, strong: ServerProcess) -> None:
    result = doctor(tmp_path, good_env(strong.port), "--url", f"ws://127.0.0.1:{strong.port}")
    assert result.returncode == 0, result.stdout
    for step in (
        "WebSocket handshake",
        "connection established",
        "private channel",
        "signed trigger",
        "delivery",
        "HTTP fallback",
    ):
        assert f"[ok]   {step}" in result.stdout
    assert "round trip" in result.stdout
    assert "a polling session opened at http://127.0.0.1" in result.stdout


def test_probe_warns_when_the_fallback_is_not_served(tmp_path: Path) -> None:
    proc = start_server(
        tmp_path,
        {"REVERB_APP_SECRET": APP_SECRET + "-but-long-enough", "OVERTONE_HTTP_FALLBACK": "false"},
    )
    try:
        result = doctor(tmp_path, good_env(proc.port), "--url", f"ws://127.0.0.1:{proc.port}")
    finally:
        proc.stop()
    assert result.returncode == 0, result.stdout  # a warning: WebSocket clients are fine
    assert "[warn] HTTP fallback: HTTP 404" in result.stdout
    assert "/pusher/app/" in result.stdout


def test_probe_diagnoses_a_wrong_key_and_a_wrong_secret(
    tmp_path: Path, strong: ServerProcess
) -> None:
    url = f"ws://127.0.0.1:{strong.port}"
    wrong_key = doctor(tmp_path, good_env(strong.port, REVERB_APP_KEY="other-key"), "--url", url)
    assert wrong_key.returncode == 1
    assert "[FAIL] connection established: 4001" in wrong_key.stdout
    assert "REVERB_APP_KEY" in wrong_key.stdout
    wrong_secret = doctor(tmp_path, good_env(strong.port, REVERB_APP_SECRET="x" * 40), "--url", url)
    assert "[FAIL] private channel" in wrong_secret.stdout
    assert "REVERB_APP_SECRET" in wrong_secret.stdout


def test_probe_diagnoses_html_from_the_api_address(tmp_path: Path, strong: ServerProcess) -> None:
    class Page(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = b"<html><body>404 Not Found</body></html>"
            self.send_response(404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    site = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        result = doctor(
            tmp_path,
            good_env(strong.port),
            "--url",
            f"ws://127.0.0.1:{strong.port}",
            "--api-url",
            f"http://127.0.0.1:{site.server_address[1]}",
        )
    finally:
        site.shutdown()
        site.server_close()
    assert result.returncode == 1
    assert "[FAIL] signed trigger: HTTP 404 with text/html instead of JSON" in result.stdout
    assert "/apps/" in result.stdout


async def _strip_upgrade_proxy(target_port: int) -> asyncio.Server:
    """A proxy that drops the Upgrade header, as a misconfigured Nginx does."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", target_port)
        head = await reader.readuntil(b"\r\n\r\n")
        lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"upgrade:")]
        upstream_writer.write(b"\r\n".join(lines))
        writer.write(await upstream_reader.read(65536))
        await writer.drain()
        writer.close()
        upstream_writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def test_probe_diagnoses_a_proxy_that_drops_upgrade(
    tmp_path: Path, strong: ServerProcess
) -> None:
    proxy = await _strip_upgrade_proxy(strong.port)
    port = proxy.sockets[0].getsockname()[1]
    try:
        result = await asyncio.to_thread(
            doctor, tmp_path, good_env(strong.port), "--url", f"ws://127.0.0.1:{port}"
        )
    finally:
        proxy.close()
    assert result.returncode == 1
    assert "[FAIL] WebSocket handshake: the server never saw the Upgrade header" in result.stdout
    assert "proxy_set_header Upgrade $http_upgrade" in result.stdout


def test_dashboard_password_warnings(tmp_path: Path) -> None:
    short = doctor(tmp_path, good_env(free_port(), OVERTONE_DASHBOARD_PASSWORD="hunter2"))
    assert short.returncode == 0, short.stdout  # a warning, not a failure
    assert "[warn] dashboard password: OVERTONE_DASHBOARD_PASSWORD has 7 characters" in short.stdout
    assert "secrets.token_urlsafe" in short.stdout
    assert "dashboard over TLS" not in short.stdout  # not production
    production = good_env(
        free_port(),
        APP_ENV="production",
        REVERB_HOST="ws.example.com",
        REVERB_PORT="443",
        REVERB_SCHEME="https",
        OVERTONE_DASHBOARD_PASSWORD="a-long-random-dashboard-password",
    )
    clear = doctor(tmp_path, production)
    assert "[ok]   dashboard password: 32 characters" in clear.stdout
    assert "[warn] dashboard over TLS: the dashboard is on in production" in clear.stdout
    assert "password in clear text" in clear.stdout and "ssh -L" in clear.stdout
    off = doctor(tmp_path, good_env(free_port()))
    assert "dashboard" not in off.stdout


def nginx_site(tmp_path: Path, port: int, *flags: str) -> str:
    """What `overtone deploy nginx` generates for overtone on ``port``."""
    env = tmp_path / "nginx.env"
    env.write_text(f"REVERB_SERVER_PORT={port}\n")
    flags = ("--server-name", "ws.example.com", *flags)
    result = subprocess.run(
        [sys.executable, "-m", "overtone", "deploy", "nginx", "--env-file", str(env), *flags],
        capture_output=True,
        text=True,
        timeout=scaled(30),
        check=True,
    )
    return result.stdout


def test_dashboard_tls_seen_in_nginx_sites(tmp_path: Path) -> None:
    production = {
        "APP_ENV": "production",
        "REVERB_SERVER_PORT": "8080",
        "OVERTONE_DASHBOARD_PASSWORD": "a-long-random-dashboard-password",
    }
    tls = nginx_site(tmp_path, 8080, "--ssl-cert", "/etc/ssl/ws.pem", "--ssl-key", "/etc/ssl/k")
    plain = nginx_site(tmp_path, 8080)
    snippet = nginx_site(tmp_path, 8080, "--locations-only")
    laravel = (
        "server {\n    listen 443 ssl;\n    ssl_certificate /etc/ssl/app.pem;\n"
        "    include snippets/overtone.conf;\n}\n"
    )
    root = tmp_path / "nginx"
    (root / "conf.d").mkdir(parents=True)
    (root / "sites-enabled").mkdir()
    (root / "snippets").mkdir()
    (root / "conf.d" / "ws.conf").write_text(tls)
    sites = config_checks.nginx_sites(root)
    assert list(sites) == [str(root / "conf.d" / "ws.conf")]

    def verdict(files: dict[str, str], **env: str) -> tuple[Status, str]:
        check = config_checks.dashboard({**production, **env}, files)[-1]
        assert check.name == "dashboard over TLS"
        return check.status, check.detail

    assert verdict(sites) == (Status.OK, f"nginx serves TLS: {root}/conf.d/ws.conf")
    assert verdict({"ws.conf": tls}, REVERB_SERVER_PORT="9000")[0] is Status.WARN  # other port
    status, detail = verdict({"/etc/nginx/conf.d/ws.conf": plain})
    assert status is Status.WARN and "ws.conf proxies to port 8080 without TLS" in detail
    assert verdict({"snippets/overtone.conf": snippet})[0] is Status.WARN
    included = {"snippets/overtone.conf": snippet, "sites-enabled/laravel": laravel}
    assert verdict(included) == (Status.OK, "nginx serves TLS: snippets/overtone.conf")
    assert verdict({}, OVERTONE_TLS_CERT="/etc/ssl/ws.pem")[0] is Status.OK
    assert config_checks.dashboard({"APP_ENV": "production"}, sites) == []


def test_authorized_connections_checks() -> None:
    assert config_checks.hosted_features({}) == []
    [on] = config_checks.hosted_features(
        {"OVERTONE_AUTHORIZED_CONNECTIONS": "true", "OVERTONE_AUTHORIZATION_TIMEOUT": "20"}
    )
    assert on.status is Status.OK and "within 20 s" in on.detail
    [idle] = config_checks.hosted_features({"OVERTONE_AUTHORIZATION_TIMEOUT": "20"})
    assert idle.status is Status.WARN and "does nothing" in idle.detail
    assert "OVERTONE_AUTHORIZED_CONNECTIONS=true" in idle.hint
