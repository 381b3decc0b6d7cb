"""Scenario 2: private channel auth and client events between pusher-js clients."""

from __future__ import annotations

import pytest

from e2e.e2e_helpers import events, run_scenario
from support.servers import ServerProcess

pytestmark = pytest.mark.e2e


def test_private_channel_auth_and_client_events(server: ServerProcess) -> None:
    result = run_scenario(server, "private")

    # Client events reach the other subscriber and are never echoed to the sender.
    assert events(result["a_events"]) == ["client-reply", "server-marker"]
    assert events(result["b_events"]) == ["client-typing", "server-marker"]
    assert result["b_events"][0] == {
        "channel": "private-chat",
        "event": "client-typing",
        "data": {"from": "a", "text": "hi b"},
    }
    assert result["a_events"][0]["data"] == {"from": "b", "text": "hi a"}

    # A wrong signature is refused with an AuthError on that channel, as the protocol says.
    error = result["subscription_error"]
    assert error.get("type") == "AuthError", error
    assert error.get("status") == 401, error
    assert isinstance(error.get("error"), str) and error["error"], error
    assert result["c_secret_subscribed"] is False
    assert result["c_secret_events"] == []

    # The connection stayed open (same socket id, never reconnected) and usable.
    assert result["state_after_error"] == "connected"
    assert result["c_state"] == "connected"
    assert result["c_socket_after"] == result["c_socket_before"]
    assert events(result["c_events"]) == ["server-marker"]
