"""Scenario 1: public channels with pusher-js, the Node SDK and the PyPI SDK."""

from __future__ import annotations

import pytest

from e2e.e2e_helpers import Scenario, events, python_sdk
from support.servers import ServerProcess

pytestmark = pytest.mark.e2e


def test_public_channel_delivery_and_socket_exclusion(server: ServerProcess) -> None:
    with python_sdk(server) as sdk, Scenario(server, "public") as run:
        ready = run.wait_stage("ready")
        channel = ready["channel"]
        assert sdk.trigger(channel, "py-hello", {"text": "hello from python", "n": 2}) == {}
        sdk.trigger(channel, "py-excluded", {"text": "not for A"}, socket_id=ready["socket_a"])
        sdk.trigger(channel, "py-marker", "plain string")
        run.resume("ready")
        result = run.finish()

    assert result["trigger_status"] == 200
    assert result["trigger_body"] == {}
    assert result["socket_a"] == ready["socket_a"] != result["socket_b"]
    # A was excluded twice (Node SDK and PyPI SDK socket_id); B got everything, in order.
    assert events(result["a_events"]) == ["greeting", "node-marker", "py-hello", "py-marker"]
    assert events(result["b_events"]) == [
        "greeting",
        "node-excluded",
        "node-marker",
        "py-hello",
        "py-excluded",
        "py-marker",
    ]
    b_events = {item["event"]: item for item in result["b_events"]}
    assert b_events["greeting"]["data"] == {"text": "hello from node", "n": 1}
    assert b_events["py-hello"]["data"] == {"text": "hello from python", "n": 2}
    assert b_events["py-excluded"]["data"] == {"text": "not for A"}
    # A string payload is delivered as that string (pusher-js cannot JSON-parse it).
    assert b_events["py-marker"]["data"] == "plain string"
    assert all(item["channel"] == "news" for item in result["b_events"])
    assert result["a_state"] == result["b_state"] == "connected"
    # The server log shows no traceback for any of this.
    assert "Traceback" not in server.log(), server.log()
