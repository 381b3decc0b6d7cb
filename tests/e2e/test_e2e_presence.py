"""Scenario 3: presence channels through laravel-echo, and the HTTP API's presence views."""

from __future__ import annotations

from typing import Any

import pytest

from e2e.e2e_helpers import Scenario, python_sdk
from support.servers import ServerProcess

pytestmark = pytest.mark.e2e

ADA = {"id": 1, "name": "Ada"}
BOB = {"id": 2, "name": "Bob"}
CY = {"id": 3, "name": "Cy"}


def by_name(members: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(members, key=lambda member: str(member["name"]))


def test_presence_through_laravel_echo(server: ServerProcess) -> None:
    with python_sdk(server) as sdk, Scenario(server, "presence") as run:
        channel = run.wait_stage("members")["channel"]
        py_users = sdk.users_info(channel)
        py_channels = sdk.channels_info("presence-", ["user_count"])
        py_channel = sdk.channel_info(channel, ["user_count"])
        run.resume("members")
        run.wait_stage("alone")
        py_users_alone = sdk.users_info(channel)
        py_channels_alone = sdk.channels_info("presence-", ["user_count"])
        run.resume("alone")
        result = run.finish(timeout=40)

    joined = result["joined"]
    # here() lists the members present at join time, the joiner included, each user once.
    assert joined["ada"]["here"] == [ADA]
    assert by_name(joined["bob"]["here"]) == [ADA, BOB]
    assert by_name(joined["cy"]["here"]) == [ADA, BOB, CY]
    assert by_name(joined["bob2"]["here"]) == [ADA, BOB, CY]
    # joining() fires for later joiners only, and not for a user's second connection.
    assert joined["ada"]["joining"] == [BOB, CY]
    assert joined["bob"]["joining"] == [CY]
    assert joined["cy"]["joining"] == []
    assert joined["bob2"]["joining"] == []
    assert all(log["errors"] == [] for log in joined.values())

    # Bob's second connection leaving is not a leave: Bob still has one connection.
    after = result["after_bob2_left"]
    assert [after[name]["leaving"] for name in ("ada", "bob", "cy")] == [[], [], []]
    assert after["ada"]["markers"] == [1, 2]

    final = result["final"]
    assert final["ada"]["leaving"] == [BOB, CY]
    assert final["cy"]["leaving"] == [BOB]

    # The HTTP API through the Node SDK: user ids as strings, each user once.
    rest = result["rest"]
    assert sorted(user["id"] for user in rest["users"]["users"]) == ["1", "2", "3"]
    assert rest["channels"] == {"channels": {"presence-room": {"user_count": 3}}}
    assert rest["channel"]["occupied"] is True
    assert rest["channel"]["user_count"] == 3
    assert rest["alone"]["users"] == {"users": [{"id": "1"}]}
    assert rest["alone"]["channels"] == {"channels": {"presence-room": {"user_count": 1}}}
    assert rest["vacated"] == {"channels": {}}

    # ... and through the PyPI SDK.
    assert sorted(user["id"] for user in py_users["users"]) == ["1", "2", "3"]
    assert py_channels == {"channels": {"presence-room": {"user_count": 3}}}
    assert py_channel["occupied"] is True
    assert py_channel["user_count"] == 3
    assert py_users_alone == {"users": [{"id": "1"}]}
    assert py_channels_alone == {"channels": {"presence-room": {"user_count": 1}}}
