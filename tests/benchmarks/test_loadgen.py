"""The compiled load client of the benchmarks (benchmarks/native/loadgen.c) against a real
server: it counts only what the server really did, and reports its own CPU."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks import native
from support.servers import APP_ID, APP_KEY, APP_SECRET, ServerProcess, scaled, start_server


def loadgen(*args: str) -> dict[str, object]:
    binary, why = native.build()
    assert binary is not None, why
    done = subprocess.run(
        [str(binary), *args], capture_output=True, text=True, timeout=scaled(60), check=True
    )
    figures: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return figures


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )


def test_connect_counts_subscriptions_the_server_made(server: ServerProcess) -> None:
    opened = metric(server.port, "overtone_connections_opened_total")
    figures = loadgen("connect", str(server.port), APP_KEY, "bench", "300", "50", "30")
    assert figures["done"] == 300 and figures["failed"] == 0 and not figures["partial"]
    assert isinstance(figures["client_cpu"], float) and figures["client_cpu"] > 0
    assert metric(server.port, "overtone_connections_opened_total") - opened == 300


def test_connect_reads_and_counts_subscription_count_frames(tmp_path: Path) -> None:
    binary, why = native.build()
    assert binary is not None, why
    server = start_server(tmp_path, {"OVERTONE_SUBSCRIPTION_COUNT": "true"})
    argv = ["connect", str(server.port), APP_KEY, "bench", "300", "50", "30", "0.5"]
    keys = [("connect", "done"), ("idle", "held")]
    try:
        found = native.phases(binary, argv, server.process.pid, False, scaled(60), keys)
    finally:
        server.stop()
    connect, idle = found["connect"], found["idle"]
    assert connect["done"] == 300 and connect["failed"] == 0 and not connect["partial"]
    assert idle["held"] == 300 and idle["dropped"] == 0
    # one right after each subscription_succeeded (the last few may still be on their way
    # when the last subscription succeeds), then coalesced ones to every subscriber
    assert connect["subscription_counts"] + idle["subscription_counts"] >= 300


def test_connect_with_a_hold_keeps_the_connections_open_until_told(
    server: ServerProcess,
) -> None:
    binary, why = native.build()
    assert binary is not None, why
    pid = server.process.pid
    argv = ["connect", str(server.port), APP_KEY, "bench", "200", "50", "30", "0.5"]
    open_fds: dict[str, int] = {}

    def after(name: str, figures: dict[str, Any]) -> None:
        open_fds[name] = len(os.listdir(f"/proc/{pid}/fd"))

    keys = [("connect", "done"), ("idle", "held")]
    found = native.phases(binary, argv, pid, False, scaled(60), keys, after)
    assert found["connect"]["done"] == 200 and found["connect"]["subscription_counts"] == 0
    idle = found["idle"]
    assert idle["held"] == 200 and idle["dropped"] == 0 and idle["wall"] >= 0.5
    assert open_fds["connect"] > 200 and open_fds["idle"] > 200  # the server still holds them


def test_connect_reports_refused_connections(server: ServerProcess) -> None:
    figures = loadgen("connect", str(server.port), "no-such-key", "bench", "20", "5", "30")
    assert figures["done"] == 0 and figures["failed"] == 20


def test_api_requests_are_signed_and_accepted(server: ServerProcess) -> None:
    figures = loadgen("api", str(server.port), APP_ID, APP_KEY, APP_SECRET, "4", "1")
    assert isinstance(figures["requests"], int) and figures["requests"] > 50
    assert figures["errors"] == 0
    counted = metric(server.port, "overtone_http_api_requests_total")
    assert counted >= figures["requests"]


def test_api_requests_with_a_wrong_secret_are_counted_as_errors(server: ServerProcess) -> None:
    figures = loadgen("api", str(server.port), APP_ID, APP_KEY, "wrong-secret", "2", "1")
    assert figures["requests"] == 0
    assert isinstance(figures["errors"], int) and figures["errors"] > 0


def test_the_three_phases_measure_one_server(server: ServerProcess) -> None:
    binary, why = native.build()
    assert binary is not None, why
    argv = ["bench", str(server.port), APP_ID, APP_KEY, APP_SECRET, "200", "50", "8", "1", "30"]
    keys = [("connect", "done"), ("fanout", "deliveries"), ("api", "requests")]
    found = native.phases(binary, argv, server.process.pid, False, scaled(60), keys)
    assert found["connect"]["done"] == 200
    fanout = found["fanout"]
    assert fanout["deliveries"] == 200 * 50 and fanout["errors"] == 0 and not fanout["partial"]
    assert fanout["server_us_per_op"] > 0 and fanout["client"] == "loadgen (C)"
    assert found["api"]["requests"] > 0 and found["api"]["errors"] == 0
