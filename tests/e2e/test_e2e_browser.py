"""Scenario 7: laravel-echo and pusher-js in headless Chromium, fed by the PyPI SDK."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from e2e.e2e_helpers import CHROMIUM, Scenario, python_sdk
from support.servers import ServerProcess

pytestmark = pytest.mark.e2e


def test_chromium_page_receives_events(server: ServerProcess, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    screenshot = tmp_path / "browser.png"
    with (
        python_sdk(server) as sdk,
        Scenario(server, "browser", {"OVERTONE_SCREENSHOT": str(screenshot)}) as run,
    ):
        ready = run.wait_stage("subscribed", timeout=40)
        channel = ready["channel"]
        assert sdk.trigger(channel, "headline", {"title": "Hello from Python"}) == {}
        sdk.trigger(channel, "headline", {"title": "Second headline ✓"})
        run.resume("subscribed")
        result = run.finish(timeout=60)

    assert result["status"] == "subscribed"
    assert result["state"] == "connected"
    assert re.fullmatch(r"\d+\.\d+", result["socket_id"]), result["socket_id"]
    assert result["socket_id"] == ready["socket_id"]
    assert result["headlines"] == ["Hello from Python", "Second headline ✓"]
    assert "Chrome/" in result["user_agent"]
    # The page's pusher-js (browser build) opened exactly one WebSocket to the server.
    [url] = result["websocket_urls"]
    assert url.startswith(f"ws://{server.host}:{server.port}/app/{server.key}?protocol=7&client=js")
    assert "&version=8." in url
    assert result["problems"] == []
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
