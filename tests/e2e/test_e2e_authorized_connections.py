"""Authorized connections (``OVERTONE_AUTHORIZED_CONNECTIONS``) with pusher-js and
laravel-echo: the 4009 deadline over WebSockets and the HTTP fallback, and the quota of
authorized connections across three nodes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.e2e_helpers import run_scenario
from e2e.test_e2e_cluster import assert_clean_logs, cluster_env, joined_nodes, run
from support.redis_server import RedisServer
from support.servers import ServerProcess, start_server

pytestmark = pytest.mark.e2e

TIMEOUT = 2
AUTHORIZING = {
    "OVERTONE_AUTHORIZED_CONNECTIONS": "true",
    "OVERTONE_AUTHORIZATION_TIMEOUT": str(TIMEOUT),
    "OVERTONE_TICK_INTERVAL": "0.2",
}


@pytest.fixture
def authorizing(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server that closes connections not authorized within 2 s (checked every 0.2 s)."""
    proc = start_server(tmp_path, AUTHORIZING)
    yield proc
    proc.stop()


def test_unauthorized_connections_are_closed_authorized_ones_stay(
    authorizing: ServerProcess,
) -> None:
    result = run_scenario(
        authorizing, "authorized_connections", extra_env={"AUTHORIZATION_TIMEOUT": str(TIMEOUT)}
    )

    # Anonymous (a public channel only), over a WebSocket and each HTTP fallback: 4009 at the
    # deadline (found by a tick, so a little later; bounded loosely, the machine is noisy),
    # and pusher-js does not reconnect.
    anonymous = {log["label"]: log for log in result["anonymous"]}
    assert {label: log["transport"] for label, log in anonymous.items()} == {
        "ws": "ws",
        "xhr_streaming": "xhr_streaming",
        "xhr_polling": "xhr_polling",
    }
    for log in anonymous.values():
        assert log["states"] == ["connected", "disconnected"], log
        assert log["errors"] and set(log["errors"]) == {4009}, log
        assert log["state"] == "disconnected", log
        assert TIMEOUT <= log["closed_after"] < TIMEOUT + 4, log

    # Signed in, on a private channel, and two Echo clients on a private channel: connected
    # past the deadline on their first connection, never an error.
    assert result["seconds"] > TIMEOUT + 1
    assert result["survived"] == result["sockets"] and all(result["sockets"])
    for log in result["authorized"]:
        assert log["states"] == ["connected"], log
        assert log["errors"] == [], log
    # ... and they work: whispers both ways, a server event, an event to the user.
    assert result["heard"] == {
        "ada": {"shipped": [{"id": 7}], "typing": [{"from": "bob"}]},
        "bob": {"shipped": [{"id": 7}], "typing": [{"from": "ada"}]},
    }
    assert result["orders"] == ["client-typing", "client-typing", "shipped"]  # whispers too
    assert result["notes"] == [{"text": "still here"}]
    assert "Traceback" not in authorizing.log(), authorizing.log()


def test_quota_counts_authorized_connections_cluster_wide(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    env = {
        **cluster_env(redis_server),
        "OVERTONE_AUTHORIZED_CONNECTIONS": "true",
        "REVERB_APP_MAX_CONNECTIONS": "2",
    }
    with joined_nodes(tmp_path, env, 3) as nodes:
        result = run(nodes, "cluster_authorized_quota")
        assert_clean_logs(nodes)

    # Anonymous connections on every node (four, with the one that signs in later) used no
    # quota: the private subscriber on node 1 still got in, with five connections open.
    assert result["anonymous_states"] == ["connected"] * 3
    assert result["connections_when_full"] == 5
    assert result["bob"]["states"] == ["connected"] and result["bob"]["errors"] == []
    assert result["bob"]["state"] == "connected"
    # Node 2 knew the quota full: signing in there closed the connection with 4004 (no
    # reconnection), and a new connection was refused with 4004.
    late, refused = result["full"]["late"], result["full"]["refused"]
    assert late["states"] == ["connected", "disconnected"], late
    assert late["errors"] and set(late["errors"]) == {4004}, late
    assert "connected" not in refused["states"], refused
    assert refused["errors"] and set(refused["errors"]) == {4004}, refused
    # Ada (node 0) gone, Cy signs in on node 2 and stays.
    assert result["ada"]["errors"] == []
    assert result["cy"]["states"] == ["connected"] and result["cy"]["errors"] == []
    assert result["cy"]["state"] == "connected"
