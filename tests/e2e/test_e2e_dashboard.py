"""The dashboard in headless Chromium against a real server, driven by real Pusher clients.

Screenshots go to ``tests/e2e/artifacts/dashboard-*.png`` (not tracked by git).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.e2e_helpers import CHROMIUM, E2E_DIR, run_scenario
from support.servers import ServerProcess, start_server

pytestmark = pytest.mark.e2e

PASSWORD = "e2e-dashboard-password"
ARTIFACTS = E2E_DIR / "artifacts"


@pytest.fixture
def dashboard_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """The test app's server with the dashboard turned on."""
    proc = start_server(tmp_path, {"OVERTONE_DASHBOARD_PASSWORD": PASSWORD})
    yield proc
    proc.stop()


def test_dashboard_in_chromium(dashboard_server: ServerProcess) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    for old in ARTIFACTS.glob("dashboard-*.png"):
        old.unlink()
    result = run_scenario(
        dashboard_server,
        "dashboard",
        timeout=150,
        extra_env={"OVERTONE_DASHBOARD_PASSWORD": PASSWORD, "OVERTONE_ARTIFACTS": str(ARTIFACTS)},
    )

    # Without the password there is a Basic challenge and no page.
    for refused in result["access"].values():
        assert refused["status"] == 401, result["access"]
        assert refused["challenge"].startswith("Basic "), refused
        assert refused["page_in_body"] is False

    # Three pusher-js clients on one channel moved the numbers, graphs and nodes table.
    overview = result["overview"]
    assert overview["connections_before"] == "0"
    assert (overview["connections"], overview["subscriptions"], overview["channels"]) == (
        "3",
        "3",
        "1",
    )
    assert overview["connection_points"] >= 2
    [node] = overview["nodes"]
    assert node[0].endswith("(this node)") and node[1] == "up" and node[2] == "3"

    # The npm SDK's event is in the console, its data shown as text, not markup.
    console = result["console"]
    assert console["row"]["channel"] == "dash-news"
    assert "hello <img src=x id=injected> & <b>bold</b>" in console["row"]["data"]
    assert console["injected_elements"] == 0
    assert console["subscribed_rows"] >= 3
    assert console["filtered_by_event"] >= 1
    assert console["filtered_by_kind"] >= 3
    assert console["hidden_while_paused"] is True
    assert re.search(r"paused, \d+ new", console["paused_status"])

    # A presence member appears in the channel view with its info, and leaves.
    presence = result["presence"]
    assert presence["members"] == [["ada-42", '{"name":"Ada <b>Lovelace</b>"}']]
    assert presence["members_after_leave"] == 0
    channel = result["channel"]
    assert '"price": 42.5' in channel["cache"]
    assert any(row[1] == "dash-hello" for row in channel["history"])
    assert channel["injected_elements"] == 0

    # The test-event form asks first, then reaches a real pusher-js subscriber exactly once.
    test_event = result["test_event"]
    assert test_event["declined_dialog"]["type"] == "confirm"
    assert test_event["dialog"]["type"] == "confirm"
    assert "form-test" in test_event["dialog"]["message"]
    assert test_event["received"] == {"from": "dashboard", "n": 7}
    assert test_event["deliveries"] == 1
    assert test_event["action"]["channel"] == "dash-form"

    # Terminate closes the signed-in user's connection with 4009.
    terminate = result["terminate"]
    assert terminate["dialog"]["type"] == "confirm"
    assert 4009 in terminate["errors"]

    # No secret reached the browser; the page loaded nothing from elsewhere; no CSP errors.
    assert result["secret_leaks"] == []
    assert result["body_errors"] == []
    assert result["foreign_requests"] == []
    assert any(r["url"].endswith("/dashboard/static/dashboard.js") for r in result["responses"])
    assert result["streams"] and all(url.endswith("/api/feed") for url in result["streams"])
    feed = result["feed"]
    assert feed["status"] == 200 and feed["content_type"].startswith("text/event-stream")
    assert feed["overview_events"] >= 5 and feed["console_events"] >= 1 and feed["has_hello"]
    assert result["problems"] == []

    for name in ("overview", "console", "channel", "actions", "full", "dark"):
        assert (ARTIFACTS / f"dashboard-{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
