"""Scenario 5: user authentication, server-to-user events, watchlist and termination."""

from __future__ import annotations

import pytest

from e2e.e2e_helpers import run_scenario
from support.servers import ServerProcess

pytestmark = pytest.mark.e2e


def test_signin_send_to_user_watchlist_and_terminate(server: ServerProcess) -> None:
    result = run_scenario(server, "user")

    # pusher-js accepted the signin and parsed the user data the Node SDK signed.
    assert result["user_data"] == {
        "id": "u1",
        "user_info": {"name": "Ada"},
        "watchlist": ["u2", "u3"],
    }
    assert result["send_status"] == result["terminate_status"] == 200

    ada, ada2, bob = result["before_termination"]
    # sendToUser reaches every connection of that user and nobody else.
    assert ada["received"] == ada2["received"] == [{"msg": "hello u1"}]
    assert bob["received"] == [{"msg": "hello u2"}]
    # Watchlist: u2 was online at signin; u3 came online then went offline.
    assert ada["watchlist"] == [
        {"name": "online", "user_ids": ["u2"]},
        {"name": "online", "user_ids": ["u3"]},
        {"name": "offline", "user_ids": ["u3"]},
    ]
    # Bob watches u1: one `online` although u1 signed in on two connections.
    assert bob["watchlist"] == [{"name": "online", "user_ids": ["u1"]}]
    assert ada["errors"] == ada2["errors"] == bob["errors"] == []

    # terminate_connections: 4009 (don't reconnect) on both of u1's connections, which stay down.
    for log in (result["ada"], result["ada2"]):
        assert log["states"] == ["connected", "disconnected"], log
        assert log["errors"] and set(log["errors"]) == {4009}, log
    # Others are untouched; Bob sees u1 go offline once its last connection is gone.
    assert result["bob_state"] == "connected"
    assert result["bob"]["errors"] == []
    assert result["bob"]["watchlist"] == [
        {"name": "online", "user_ids": ["u1"]},
        {"name": "offline", "user_ids": ["u1"]},
    ]

    # A signin signed with a wrong secret is refused with 4009 and not retried.
    mallory = result["mallory"]
    assert mallory["states"] == ["connected", "disconnected"], mallory
    assert mallory["errors"] and set(mallory["errors"]) == {4009}, mallory
