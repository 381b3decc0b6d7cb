"""``overtone top``: rendering of the overview, the /metrics fallback, and real servers."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets.sync.client

from overtone.cli.top import Poller, Target
from overtone.cli.top_frames import SPARKS, render, render_metrics, sparkline
from overtone.cli.top_metrics import TopError, metrics_view, parse_metrics, quantile
from support.rawws import RawClient
from support.servers import APP_ID, APP_KEY, ServerProcess, scaled, start_server

PASSWORD = "a-long-dashboard-password"


def sample_overview() -> dict[str, Any]:
    """The overview document of docs/dashboard.md, with a minute of series."""
    ramp = [float(i) for i in range(60)]
    return {
        "node": "a1b2c3",
        "version": "0.9.0",
        "time": 1764567890.12,
        "uptime": 3725.5,
        "cluster": True,
        "apps": [
            {
                "id": "100000",
                "key": "overtone-key",
                "connections": 1200,
                "local_connections": 600,
                "channels": 40,
                "subscriptions": 2400,
                "presence_users": 35,
                "rates": {
                    "messages_in": 12.0,
                    "messages_out": 850.0,
                    "bytes_in": 900.0,
                    "bytes_out": 120000.0,
                    "api_requests": 4.0,
                },
                "errors": {"4009": 2, "4301": 1},
                "history": {"streams": 12, "events": 340},
            },
            {
                "id": "200000",
                "key": "other-key",
                "connections": 3,
                "local_connections": 1,
                "channels": 1,
                "subscriptions": 3,
                "presence_users": 0,
                "rates": {},
                "errors": {},
            },
        ],
        "api": {
            "requests_per_s": 4.0,
            "p50_ms": 0.4,
            "p99_ms": 2.1,
            "by_status": {"200": 1000, "401": 3},
        },
        "webhooks": {"queued": 0, "sent": 120, "failed": 0, "dropped": 0},
        "nodes": [
            {
                "id": "a1b2c3",
                "self": True,
                "state": "up",
                "last_seen": 0.0,
                "connections": 600,
                "cpu": 12.5,
                "rss": 48_000_000,
                "messages_out": 425.0,
            },
            {
                "id": "d4e5f6",
                "self": False,
                "state": "stale",
                "last_seen": 4.2,
                "connections": 600,
                "cpu": 11.0,
                "rss": 50_000_000,
                "messages_out": 425.0,
            },
        ],
        "series": {
            "t": [1764567830.0 + i for i in range(60)],
            "apps": {
                "100000": {
                    "connections": [1200.0] * 60,
                    "messages_in": ramp,
                    "messages_out": [0.0] * 59 + [850.0],
                    "bytes_out": ramp,
                    "api_requests": [4.0] * 60,
                }
            },
        },
    }


def line_of(text: str, start: str) -> str:
    found = [line for line in text.splitlines() if line.strip().startswith(start)]
    assert found, f"no line starting with {start!r} in:\n{text}"
    return found[0]


def test_render_shows_every_part_of_the_overview() -> None:
    text = render(sample_overview(), source="http://127.0.0.1:8080/dashboard/api/overview")
    assert text.startswith("overtone 0.9.0  node a1b2c3  up 1h 2m  cluster of 2 nodes")
    assert "app 100000  key overtone-key" in text and "app 200000  key other-key" in text
    assert "1,200 cluster / 600 local" in line_of(text, "connections")
    assert line_of(text, "channels").split()[-1] == "40"
    assert line_of(text, "subscriptions").split()[-1] == "2,400"
    assert line_of(text, "presence users").split()[-1] == "35"
    assert "12.0/s" in line_of(text, "messages in")
    assert "850/s" in line_of(text, "messages out")
    assert "900 B/s" in line_of(text, "bytes in")
    assert "117.2 KiB/s" in line_of(text, "bytes out")
    assert "4.0/s" in line_of(text, "API requests")
    assert line_of(text, "errors") == "  errors          4009: 2  4301: 1"
    assert "12 streams, 340 events" in line_of(text, "history")
    assert "API       4.0 req/s  p50 0.40 ms  p99 2.10 ms  by status: 200: 1,000  401: 3" in text
    assert "webhooks  queued 0  sent 120  failed 0  dropped 0" in text
    assert "a1b2c3 *" in line_of(text, "a1b2c3") and "45.8 MiB" in line_of(text, "a1b2c3")
    stale = line_of(text, "d4e5f6")
    assert "stale" in stale and "4.2s" in stale and "11.0%" in stale
    # Sparklines of the last minute: 30 bars, two seconds each.
    assert line_of(text, "messages in").endswith(sparkline([float(i) for i in range(60)]))
    assert line_of(text, "messages out").endswith(SPARKS[0] * 29 + SPARKS[-1])
    assert line_of(text, "connections").endswith(SPARKS[-1] * 30)


def test_render_one_app_and_missing_parts() -> None:
    overview = sample_overview()
    only = render(overview, app="200000")
    assert "app 200000" in only and "app 100000" not in only
    assert "3 cluster / 1 local" in line_of(only, "connections")
    assert line_of(only, "errors").split()[-1] == "none"
    assert "no app 999 on this server" in render(overview, app="999")
    overview["webhooks"] = None
    del overview["series"], overview["api"]
    overview["apps"][0].pop("presence_users")
    overview["cluster"] = False
    text = render(overview)
    assert "single node" in text.splitlines()[0]
    assert "webhooks  none configured" in text
    assert line_of(text, "presence users").split()[-1] == "-"
    assert SPARKS[-1] not in text


def test_sparkline() -> None:
    assert sparkline([float(i) for i in range(8)], width=8) == SPARKS
    assert sparkline([0.0, 0.0, 0.0]) == SPARKS[0] * 3
    assert sparkline([5.0, None, 5.0]) == SPARKS[-1] + " " + SPARKS[-1]
    assert sparkline([]) == ""
    peaks = sparkline([0.0] * 59 + [1.0], width=30)  # a one-second peak is kept
    assert len(peaks) == 30 and peaks.endswith(SPARKS[-1])


METRICS = """\
# TYPE overtone_connections gauge
overtone_connections{{app="123456"}} {local}
# TYPE overtone_cluster_connections gauge
overtone_cluster_connections{{app="123456"}} {cluster}
# TYPE overtone_channels gauge
overtone_channels{{app="123456"}} 2
# TYPE overtone_subscriptions gauge
overtone_subscriptions{{app="123456"}} 5
# TYPE overtone_messages_received_total counter
overtone_messages_received_total{{app="123456"}} {received}
# TYPE overtone_messages_sent_total counter
overtone_messages_sent_total{{app="123456"}} {sent}
# TYPE overtone_bytes_sent_total counter
overtone_bytes_sent_total{{app="123456"}} {sent_bytes}
# TYPE overtone_errors_total counter
overtone_errors_total{{app="123456",code="4301"}} 3.0
# TYPE overtone_http_api_seconds histogram
overtone_http_api_seconds_bucket{{le="0.001",route="events"}} {fast}
overtone_http_api_seconds_bucket{{le="0.01",route="events"}} {slow}
overtone_http_api_seconds_bucket{{le="+Inf",route="events"}} {slow}
overtone_http_api_seconds_count{{route="events"}} {slow}
overtone_http_api_seconds_sum{{route="events"}} 0.5
# TYPE overtone_http_api_requests_total counter
overtone_http_api_requests_total{{route="events",status="200"}} {slow}
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total {cpu}
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 4.4e+07
"""


def metrics_text(**values: float) -> str:
    defaults = {
        "local": 1,
        "cluster": 3,
        "received": 10,
        "sent": 100,
        "sent_bytes": 1000,
        "fast": 0,
        "slow": 0,
        "cpu": 1.0,
    }
    return METRICS.format(**{**defaults, **values})


def test_metrics_rates_between_two_scrapes() -> None:
    before = parse_metrics(metrics_text(), at=100.0)
    after = parse_metrics(
        metrics_text(received=30, sent=500, sent_bytes=5000, fast=100, slow=200, cpu=1.5),
        at=102.0,
    )
    assert after.apps["123456"]["connections"] == 3
    assert after.errors == {"123456": {"4301": 3.0}}
    view = metrics_view(before, after)
    assert view.seconds == 2.0
    rates = view.rates["123456"]
    assert (rates["messages_in"], rates["messages_out"], rates["bytes_out"]) == (10, 200, 2000)
    assert rates["bytes_in"] is None  # not in the text
    assert view.api_rate == 100
    assert view.p50_ms == pytest.approx(1.0)  # the 100th of 200 requests: top of the 1 ms bucket
    assert view.p99_ms == pytest.approx(1 + 9 * 98 / 100)
    assert view.cpu_percent == pytest.approx(25.0)
    text = render_metrics(view, source="http://x/metrics")
    assert "3 cluster / 1 local" in line_of(text, "connections")
    assert "10.0/s" in line_of(text, "messages in")
    assert "2.0 KiB/s" in line_of(text, "bytes out")
    assert line_of(text, "errors").split()[-2:] == ["4301:", "3"]
    assert "100 req/s  p50 1.00 ms  p99 9.82 ms  by status: 200: 200" in text
    assert "cpu 25.0%  rss 42.0 MiB" in text


def test_metrics_after_a_restart_show_no_rate() -> None:
    before = parse_metrics(metrics_text(received=50, slow=20, fast=20), at=1.0)
    after = parse_metrics(metrics_text(received=5, slow=2, fast=2), at=2.0)
    view = metrics_view(before, after)
    assert view.rates["123456"]["messages_in"] is None
    assert view.api_rate is None and view.p50_ms is None
    assert "-/s" in line_of(render_metrics(view), "messages in")


def test_quantile() -> None:
    assert quantile(0.5, {}) is None
    assert quantile(0.5, {0.1: 0.0, float("inf"): 0.0}) is None
    assert quantile(0.5, {0.1: 10.0, 1.0: 10.0, float("inf"): 10.0}) == pytest.approx(0.05)
    assert quantile(0.99, {0.1: 0.0, float("inf"): 10.0}) == 0.1  # beyond the last bound


def test_metrics_from_a_real_server(server: ServerProcess) -> None:
    with httpx.Client(timeout=scaled(5)) as http:
        poller = Poller(Target(server.http_url, None, None, True, None), http)
        with websockets.sync.client.connect(server.ws_url, open_timeout=scaled(5)) as ws:
            assert "connection_established" in str(ws.recv(timeout=scaled(5)))
            first = poller.scrape()
            for _ in range(3):
                ws.send(json.dumps({"event": "pusher:ping", "data": {}}))
                assert "pusher:pong" in str(ws.recv(timeout=scaled(5)))
            second = poller.scrape()
    view = metrics_view(first, second)
    rates = view.rates[APP_ID]
    assert rates["messages_in"] == pytest.approx(3 / view.seconds)
    assert rates["messages_out"] == pytest.approx(3 / view.seconds)
    assert second.apps[APP_ID]["connections"] == 1
    text = render_metrics(view)
    assert f"app {APP_ID}" in text
    assert "1 cluster / 1 local" in line_of(text, "connections")


def top(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``overtone top`` as an operator runs it, in a directory without a ``.env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("REVERB_", "OVERTONE_"))}
    return subprocess.run(
        [sys.executable, "-m", "overtone", "top", "--once", *args],
        cwd=tmp_path,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=scaled(30),
        check=False,
    )


def test_once_with_metrics_and_their_token(tmp_path: Path) -> None:
    server = start_server(tmp_path, {"OVERTONE_METRICS_TOKEN": "scrape-token"})
    try:
        with websockets.sync.client.connect(server.ws_url, open_timeout=scaled(5)) as ws:
            ws.recv(timeout=scaled(5))
            address = {"REVERB_SERVER_HOST": "0.0.0.0", "REVERB_SERVER_PORT": str(server.port)}
            refused = top(tmp_path, "--interval", "0.2", **address)
            token = {"OVERTONE_METRICS_TOKEN": "scrape-token", **address}
            shown = top(tmp_path, "--interval", "0.2", **token)
            dashboard_off = top(tmp_path, "--interval", "0.2", "--password", PASSWORD, **token)
    finally:
        server.stop()
    assert dashboard_off.returncode == 0, dashboard_off.stderr
    assert "the dashboard is off on this server (404" in dashboard_off.stderr
    assert f"app {APP_ID}" in dashboard_off.stdout
    assert refused.returncode == 1, refused.stderr
    assert "401" in refused.stderr and "OVERTONE_METRICS_TOKEN is not set" in refused.stderr
    assert shown.returncode == 0, shown.stderr
    assert f"http://127.0.0.1:{server.port}/metrics" in shown.stdout  # 0.0.0.0 -> loopback
    assert f"app {APP_ID}" in shown.stdout
    assert "1 cluster / 1 local" in line_of(shown.stdout, "connections")
    assert "\x1b[" not in shown.stdout


def test_unreachable_server_and_bad_flags(tmp_path: Path) -> None:
    down = top(tmp_path, "--url", "http://127.0.0.1:1")
    assert down.returncode == 1
    assert "cannot reach http://127.0.0.1:1/metrics" in down.stderr
    missing = top(tmp_path, "--env-file", str(tmp_path / "nope.env"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    bad = top(tmp_path, "--interval", "0")
    assert bad.returncode == 2 and "--interval" in bad.stderr


async def test_once_with_the_dashboard_of_a_real_server(tmp_path: Path) -> None:
    server = start_server(tmp_path, {"OVERTONE_DASHBOARD_PASSWORD": PASSWORD})
    address = {"REVERB_SERVER_HOST": "0.0.0.0", "REVERB_SERVER_PORT": str(server.port)}
    try:
        client = await RawClient.connect(server.port, f"/app/{APP_KEY}?protocol=7")
        try:
            await client.established()
            shown = await asyncio.to_thread(
                top, tmp_path, OVERTONE_DASHBOARD_PASSWORD=PASSWORD, **address
            )
            other = await asyncio.to_thread(
                top, tmp_path, "--app", "999", OVERTONE_DASHBOARD_PASSWORD=PASSWORD, **address
            )
        finally:
            client.close()
        wrong = await asyncio.to_thread(top, tmp_path, "--password", "wrong", **address)
        with httpx.Client(timeout=scaled(5)) as http:
            guess = Poller(Target(server.http_url, "guess", None, True, None), http)
            refusals = []
            for _ in range(6):
                with pytest.raises(TopError) as refused:
                    guess.overview()
                refusals.append(str(refused.value))
    finally:
        server.stop()
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("overtone ") and "single node" in shown.stdout
    assert f"http://127.0.0.1:{server.port}/dashboard/api/overview" in shown.stdout
    assert f"app {APP_ID}  key {APP_KEY}" in shown.stdout
    assert "1 cluster / 1 local" in line_of(shown.stdout, "connections")
    assert line_of(shown.stdout, "node ").split()[:2] == ["node", "state"]
    assert "\x1b[" not in shown.stdout
    assert other.returncode == 1 and f"no app 999 on this server (apps: {APP_ID})" in other.stderr
    assert wrong.returncode == 1 and "401, wrong dashboard password" in wrong.stderr
    # The earlier wrong attempt counts: the fifth failure in a minute turns the address away.
    assert all("401" in message for message in refusals[:4]), refusals
    assert "429, too many failed logins" in refusals[-1], refusals
