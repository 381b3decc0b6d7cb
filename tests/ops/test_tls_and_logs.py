"""TLS without a proxy, and JSON logs."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

import websockets.sync.client

from support.servers import start_server
from support.tls import self_signed


def test_wss_and_https_from_a_certificate_in_the_environment(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server = start_server(
        tmp_path,
        {"OVERTONE_TLS_CERT": str(cert), "OVERTONE_TLS_KEY": str(key)},
        scheme="https",
    )
    try:
        context = ssl.create_default_context(cafile=str(cert))
        with urllib.request.urlopen(
            f"https://127.0.0.1:{server.port}/up", context=context, timeout=5
        ) as answer:
            assert json.loads(answer.read()) == {"health": "OK"}
        url = f"wss://127.0.0.1:{server.port}/app/{server.key}?protocol=7"
        with websockets.sync.client.connect(url, ssl=context, open_timeout=5) as ws:
            first = json.loads(ws.recv(timeout=5))
            assert first["event"] == "pusher:connection_established"
        assert "Starting server on https://" in server.log()
    finally:
        assert server.stop() == 0


def test_json_logs(tmp_path: Path) -> None:
    server = start_server(tmp_path, {"OVERTONE_LOG_FORMAT": "json"})
    assert server.stop() == 0
    lines = [json.loads(line) for line in server.log().splitlines() if line.strip()]
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    messages = [line["message"] for line in lines]
    assert any(m.startswith("Starting server on http://127.0.0.1:") for m in messages)
    assert any(m == "stopped" for m in messages)
    assert not any("test-secret" in m for m in messages)  # the summary has no secrets


def test_debug_logs_every_frame_in_and_out(tmp_path: Path) -> None:
    server = start_server(tmp_path, args=("--debug",))
    try:
        with websockets.sync.client.connect(server.ws_url, open_timeout=5) as ws:
            ws.recv(timeout=5)
            ws.send('{"event":"pusher:ping","data":{}}')
            assert json.loads(ws.recv(timeout=5))["event"] == "pusher:pong"
    finally:
        assert server.stop() == 0
    log = server.log()
    assert '<- {"event":"pusher:ping","data":{}}' in log
    assert '-> {"event":"pusher:pong","data":{}}' in log
    assert '-> {"event":"pusher:connection_established"' in log


def test_doctor_finds_a_local_server_that_serves_tls(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    tls = {"OVERTONE_TLS_CERT": str(cert), "OVERTONE_TLS_KEY": str(key)}
    server = start_server(tmp_path, tls, scheme="https")
    try:
        env = {**server.env, "REVERB_HOST": "127.0.0.1", "REVERB_PORT": str(server.port)}
        result = subprocess.run(
            [sys.executable, "-m", "overtone", "doctor"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert f"[ok]   local server: answering on 127.0.0.1:{server.port}" in result.stdout
    finally:
        server.stop()
