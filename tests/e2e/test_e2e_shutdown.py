"""Scenario 8: SIGTERM drains the server with 4200, and pusher-js reconnects at once."""

from __future__ import annotations

import time
from typing import Any

import pytest

from e2e.e2e_helpers import Scenario, python_sdk
from support.servers import ServerProcess, scaled

pytestmark = pytest.mark.e2e

# Closing every client with 4200 and stopping should take well under a second.
STOP_BOUND = 5.0


def stop_during_scenario(server: ServerProcess, sdk: Any = None) -> tuple[int, float, Any]:
    with Scenario(server, "shutdown") as run:
        run.wait_stage("connected")
        if sdk is not None:
            # A long-running app process (queue worker, Octane) keeps its HTTP connection.
            assert sdk.trigger("news", "before-shutdown", {}) == {}
        started = time.monotonic()
        code = server.stop(timeout=30)
        elapsed = time.monotonic() - started
        run.resume("connected")
        return code, elapsed, run.finish()


def check_clients(result: dict[str, Any]) -> None:
    # The raw client got `pusher:error` 4200 and then the close frame with the same code.
    assert [error["code"] for error in result["raw_errors"]] == [4200], result
    assert result["raw_close_code"] == 4200
    # pusher-js saw 4200 and applied the "reconnect immediately" policy: straight to
    # `connecting` (no `disconnected`/`failed`), then `unavailable` as nothing answers.
    assert 4200 in result["errors"], result
    assert not {error for error in result["errors"] if isinstance(error, int)} - {4200}, result
    states = result["states"]
    assert states[:2] == ["connected", "connecting"], states
    assert "unavailable" in states, states
    assert "failed" not in states and "disconnected" not in states, states


def test_sigterm_closes_clients_with_4200(server: ServerProcess) -> None:
    code, elapsed, result = stop_during_scenario(server)
    assert code == 0, server.log()
    assert elapsed < scaled(STOP_BOUND), f"stop took {elapsed:.1f} s\n{server.log()}"
    check_clients(result)


def test_sigterm_with_an_idle_keepalive_api_connection(server: ServerProcess) -> None:
    with python_sdk(server) as sdk:
        code, elapsed, result = stop_during_scenario(server, sdk)
    assert code == 0, server.log()
    check_clients(result)
    # An idle kept-alive HTTP API connection must not hold the shutdown up.
    assert elapsed < scaled(STOP_BOUND), f"stop took {elapsed:.1f} s\n{server.log()}"
