"""Authorized connections on one node: the deadline, what authorizes, the quota."""

from __future__ import annotations

from dataclasses import replace
from itertools import count
from typing import Any

import pytest

from overtone.apps import App
from overtone.channels.history import HistoryLimits
from overtone.hub import Hub
from support.fakes import FakeClient, signin_data

APP = App(
    id="1",
    key="key",
    secret="secret",
    history=HistoryLimits(enabled=False),
    authorized_connections=True,
    authorization_timeout=30,
)


def make_hub(**options: Any) -> Hub:
    ids = count(1)
    return Hub(replace(APP, **options), lambda: f"{next(ids)}.1", pong_timeout=30)


def connected(hub: Hub, now: float = 0.0) -> FakeClient:
    c = FakeClient(hub, now=now).connect()
    assert c.session is not None
    c.take()
    return c


def test_an_anonymous_connection_is_closed_with_4009_at_the_deadline() -> None:
    hub = make_hub()
    public = connected(hub)
    public.subscribe("news")  # a public channel does not authorize
    hub.tick(29.0)
    assert public.closed_with is None
    hub.tick(30.0)
    assert public.closed_with == (4009, "Connection not authorized within timeout")
    assert public.take()[-1] == {
        "event": "pusher:error",
        "data": {"code": 4009, "message": "Connection not authorized within timeout"},
    }
    assert hub.sessions == {} and hub.channels == {}


@pytest.mark.parametrize("how", ["signin", "private", "presence", "encrypted"])
def test_signing_in_or_a_signed_subscription_authorizes_for_good(how: str) -> None:
    hub = make_hub()
    c = connected(hub)
    if how == "signin":
        c.send({"event": "pusher:signin", "data": signin_data(hub, c.socket_id, {"id": "u"})})
    elif how == "presence":
        c.subscribe("presence-room", {"user_id": "u"})
    else:
        c.subscribe("private-encrypted-x" if how == "encrypted" else "private-x")
    assert c.take()[0]["event"] in (
        "pusher:signin_success",
        "pusher_internal:subscription_succeeded",
    )
    for now in (30.0, 31.0, 60.0):
        hub.tick(now)
        c.send({"event": "pusher:pong", "data": {}}, now=now)  # answers the pings
    assert c.closed_with is None
    assert hub.authorized == 1


def test_failed_authorization_does_not_count() -> None:
    hub = make_hub()
    c = connected(hub)
    c.send({"event": "pusher:subscribe", "data": {"channel": "private-x", "auth": "key:bad"}})
    assert c.take()[0]["event"] == "pusher:subscription_error"
    hub.tick(30.0)
    assert c.closed_with is not None and c.closed_with[0] == 4009


def test_the_option_off_closes_nobody() -> None:
    hub = make_hub(authorized_connections=False)
    c = connected(hub)
    hub.tick(31.0)
    assert c.closed_with is None and not hub.unauthorized


def test_only_authorized_connections_count_against_the_quota() -> None:
    hub = make_hub(max_connections=2)
    anonymous = [connected(hub) for _ in range(5)]  # none counts
    first, second = anonymous[0], anonymous[1]
    first.subscribe("private-a")
    second.send({"event": "pusher:signin", "data": signin_data(hub, second.socket_id, {"id": "u"})})
    assert hub.authorized == 2
    third = anonymous[2]
    third.take()
    third.subscribe("private-a")  # no room: closed, as an over-quota connection is refused
    assert third.closed_with is not None and third.closed_with[0] == 4004
    refused = FakeClient(hub).connect()  # the authorized ones fill the quota
    assert refused.session is None and refused.closed_with is not None
    assert refused.closed_with[0] == 4004
    first.disconnect()
    assert hub.authorized == 1
    assert FakeClient(hub).connect().session is not None
    anonymous[3].subscribe("private-b")
    assert anonymous[3].closed_with is None and hub.authorized == 2


def test_a_signed_in_connection_that_signs_in_again_counts_once() -> None:
    hub = make_hub()
    c = connected(hub)
    for user in ("a", "b"):
        c.send({"event": "pusher:signin", "data": signin_data(hub, c.socket_id, {"id": user})})
    c.subscribe("private-x")
    assert hub.authorized == 1
    c.disconnect()
    assert hub.authorized == 0
