"""pusher-js 8 and 7 with overtone's recovery add-on over each HTTP fallback transport, through
a 3 s network cut: every event published meanwhile arrives once, in order."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from e2e.e2e_helpers import Scenario, python_sdk
from support.netcut import NetworkCut
from support.servers import ServerProcess, start_server

pytestmark = pytest.mark.e2e

PROXY_HOST = "127.0.0.3"


@pytest.fixture
def roomy(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server whose channels keep 500 events (the cut misses 160)."""
    proc = start_server(tmp_path, {"OVERTONE_HISTORY_MAX_EVENTS": "500"})
    yield proc
    proc.stop()


@pytest.mark.parametrize("pusher_js", ["8", "7"])
@pytest.mark.parametrize("transport", ["xhr_streaming", "xhr_polling"])
def test_recovery_through_a_cut_over_the_fallback(
    roomy: ServerProcess, transport: str, pusher_js: str
) -> None:
    server = roomy
    proxied = replace(server, host=PROXY_HOST)
    env = {"FALLBACK_TRANSPORT": transport, "PUSHER_JS": pusher_js}
    with (
        NetworkCut(PROXY_HOST, "127.0.0.1", [server.port]) as cut,
        python_sdk(server) as sdk,
        Scenario(proxied, "fallback_recovery", env) as run,
    ):
        ready = run.wait_stage("ready", timeout=30)
        channel = ready["channel"]
        for n in range(1, 21):
            sdk.trigger(channel, "tick", {"n": n})
        run.resume("ready")
        run.wait_stage("cut", timeout=30)
        cut.cut()
        started = time.monotonic()
        for n in range(21, 181):
            sdk.trigger(channel, "tick", {"n": n})
            time.sleep(max(0.0, started + n * 3 / 180 - time.monotonic()))
        cut.restore()
        run.resume("cut")
        result = run.finish(timeout=60)
    assert result["received"] == list(range(1, 181)), result
    assert result["resyncs"] == []
    assert result["new_socket"] is True  # it did reconnect
    assert result["transport"] == transport
    assert "Traceback" not in server.log(), server.log()
