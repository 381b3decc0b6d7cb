"""The Starlette and FastAPI endpoints, driven by TestClient, used on the real server."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

pytest.importorskip("httpx2")
fastapi = pytest.importorskip("fastapi")

from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from broadcast.conftest import Connect  # noqa: E402
from broadcast.helpers import (  # noqa: E402
    USER_HEADER,
    Post,
    config_for,
    exercise_endpoints,
    registry_for,
    user_named,
)
from overtone.broadcast import BroadcastConfig, ChannelRegistry  # noqa: E402
from overtone.broadcast.starlette import install, routes  # noqa: E402
from support.servers import ServerProcess  # noqa: E402


def poster(client: TestClient) -> Post:
    def post(
        path: str, params: Mapping[str, str], user: str | None, as_json: bool
    ) -> tuple[int, Any]:
        headers = {USER_HEADER: user} if user else {}
        if as_json:
            response = client.post(path, json=dict(params), headers=headers)
        else:
            response = client.post(path, data=dict(params), headers=headers)
        assert response.headers["content-type"] == "application/json"
        return response.status_code, response.json()

    return post


def header_user(request: Request) -> dict[str, Any] | None:
    return user_named(request.headers.get(USER_HEADER))


async def test_starlette_routes_authorize_real_subscriptions(
    server: ServerProcess, ws: Connect
) -> None:
    app = Starlette(routes=routes(registry_for(config_for(server)), header_user))
    client = TestClient(app)
    await exercise_endpoints(poster(client), server, ws)
    assert client.get("/broadcasting/auth").status_code == 405


async def test_fastapi_install_with_an_async_resolver_and_callbacks(
    server: ServerProcess, ws: Connect
) -> None:
    channels = registry_for(config_for(server))

    async def resolver(request: Request) -> dict[str, Any] | None:
        return header_user(request)

    async def vip(user: dict[str, Any], level: str) -> bool:
        return level == "gold"

    channels.channel("vip.{level}", vip)
    app = fastapi.FastAPI()
    install(app, channels, resolver)
    client = TestClient(app)
    await exercise_endpoints(poster(client), server, ws)
    post = poster(client)
    ok, _ = post(
        "/broadcasting/auth", {"socket_id": "1.2", "channel_name": "private-vip.gold"}, "ana", False
    )
    no, _ = post(
        "/broadcasting/auth", {"socket_id": "1.2", "channel_name": "private-vip.tin"}, "ana", False
    )
    assert (ok, no) == (200, 403)


def test_a_custom_prefix_and_an_oversized_body() -> None:
    channels = ChannelRegistry(BroadcastConfig(app_id="1", key="k", secret="s"))
    client = TestClient(Starlette(routes=routes(channels, lambda request: None, prefix="/rt")))
    assert client.post("/rt/auth", content=b"x" * 100_000).status_code == 413
    assert client.post("/broadcasting/auth").status_code == 404
