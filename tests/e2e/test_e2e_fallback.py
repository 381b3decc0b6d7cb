"""pusher-js 8 and 7 in Node over each HTTP fallback transport: every protocol feature."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.e2e_helpers import run_scenario
from support.servers import ServerProcess, start_server

pytestmark = pytest.mark.e2e

FAST = {"OVERTONE_HTTP_SESSION_TIMEOUT": "2", "OVERTONE_HTTP_POLL_TIMEOUT": "2"}


@pytest.fixture
def fast(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server whose fallback sessions expire 2 s after their last request."""
    proc = start_server(tmp_path, FAST)
    yield proc
    proc.stop()


@pytest.mark.parametrize("pusher_js", ["8", "7"])
@pytest.mark.parametrize("transport", ["xhr_streaming", "xhr_polling"])
def test_pusher_js_over_the_fallback(fast: ServerProcess, transport: str, pusher_js: str) -> None:
    result = run_scenario(
        fast,
        "fallback",
        timeout=90,
        extra_env={"FALLBACK_TRANSPORT": transport, "PUSHER_JS": pusher_js},
    )
    assert result["transport"] == transport
    assert result["ada_news"] == ["greeting", "marker"]  # excluded by socket id
    assert result["bob_news"] == ["greeting", "not-for-ada", "marker"]
    assert result["client_events"] == [["client-typing"], ["client-typing"]]
    assert result["cached"] == {"price": 42}
    assert result["secret"] == {"text": "hush"}
    assert result["notes"] == [{"text": "see you at 3"}]
    assert "bob" in result["online"]
    assert result["states"]  # terminate_connections reached the fallback session
    assert "Traceback" not in fast.log(), fast.log()
