"""``overtone doctor --url`` through a real nginx with TLS, healthy and broken."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.deploy_helpers import binary, self_signed, start_nginx
from deploy.test_deploy_nginx import UPGRADE_LINE, generate, start_overtone, write_env
from support.servers import APP_ID, APP_KEY, APP_SECRET, ServerProcess, free_port, scaled


@pytest.fixture
def overtone(tmp_path: Path) -> Iterator[ServerProcess]:
    server = start_overtone(tmp_path)
    yield server
    server.stop()


def doctor(
    tmp_path: Path, port: int, cert: Path | None, key: str = APP_KEY
) -> subprocess.CompletedProcess[str]:
    env_file = tmp_path / "app.env"
    env_file.write_text(
        f"REVERB_APP_ID={APP_ID}\nREVERB_APP_KEY={key}\nREVERB_APP_SECRET={APP_SECRET}\n"
        f"REVERB_HOST=127.0.0.1\nREVERB_PORT={port}\nREVERB_SCHEME=https\n"
        "REVERB_SERVER_HOST=127.0.0.1\nREVERB_SERVER_PORT=1\nBROADCAST_CONNECTION=reverb\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REVERB_", "SSL_"))}
    if cert is not None:
        env["SSL_CERT_FILE"] = str(cert)  # trust the test certificate, verify everything else
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "overtone",
            "doctor",
            "--env-file",
            str(env_file),
            "--url",
            f"wss://127.0.0.1:{port}",
            "--timeout",
            "5",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=scaled(60),
        check=False,
    )


def test_doctor_through_nginx(tmp_path: Path, overtone: ServerProcess) -> None:
    binary("nginx")
    port = free_port()
    cert, key = self_signed(tmp_path)
    flags = ["--listen", f"127.0.0.1:{port}", "--ssl-cert", str(cert), "--ssl-key", str(key)]
    good = generate(tmp_path, write_env(tmp_path, overtone.port), *flags)
    proxy = start_nginx(tmp_path, good, port)
    try:
        healthy = doctor(tmp_path, port, cert)
        untrusted = doctor(tmp_path, port, None)
        wrong_key = doctor(tmp_path, port, cert, key="not-the-key")
    finally:
        proxy.stop()
    print(healthy.stdout)
    assert healthy.returncode == 0, healthy.stdout
    assert "[ok]   delivery: event received, round trip" in healthy.stdout
    assert "[ok]   HTTP fallback: a polling session opened at https://127.0.0.1" in healthy.stdout
    assert untrusted.returncode == 1
    assert "[FAIL] WebSocket handshake: TLS certificate rejected" in untrusted.stdout
    assert wrong_key.returncode == 1
    assert "[FAIL] connection established: 4001" in wrong_key.stdout

    broken = good.replace(UPGRADE_LINE, "# Upgrade header not forwarded")
    proxy = start_nginx(tmp_path, broken, port)
    try:
        no_upgrade = doctor(tmp_path, port, cert)
    finally:
        proxy.stop()
    assert no_upgrade.returncode == 1
    assert "[FAIL] WebSocket handshake: the server never saw the Upgrade header" in (
        no_upgrade.stdout
    )
    assert "proxy_set_header Upgrade $http_upgrade" in no_upgrade.stdout
