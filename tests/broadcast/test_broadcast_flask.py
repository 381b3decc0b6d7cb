"""The Flask blueprint, driven by Flask's test client, used on the real server."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

pytest.importorskip("flask")

from flask import Flask, Request, request
from flask.testing import FlaskClient

from broadcast.conftest import Connect
from broadcast.helpers import (
    USER_HEADER,
    Post,
    config_for,
    exercise_endpoints,
    registry_for,
    user_named,
)
from overtone.broadcast import BroadcastConfig, ChannelRegistry
from overtone.broadcast.flask import blueprint
from support.servers import ServerProcess


def header_user(request: Request) -> dict[str, Any] | None:
    return user_named(request.headers.get(USER_HEADER))


def poster(client: FlaskClient) -> Post:
    def post(
        path: str, params: Mapping[str, str], user: str | None, as_json: bool
    ) -> tuple[int, Any]:
        headers = {USER_HEADER: user} if user else {}
        if as_json:
            response = client.post(path, json=dict(params), headers=headers)
        else:
            response = client.post(path, data=dict(params), headers=headers)
        assert response.mimetype == "application/json"
        return response.status_code, response.get_json()

    return post


async def test_flask_blueprint_authorizes_real_subscriptions(
    server: ServerProcess, ws: Connect
) -> None:
    app = Flask(__name__)
    app.register_blueprint(blueprint(registry_for(config_for(server)), header_user))
    client = app.test_client()
    await exercise_endpoints(poster(client), server, ws)
    assert client.get("/broadcasting/auth").status_code == 405


def test_two_blueprints_with_their_own_names_and_prefixes() -> None:
    channels = ChannelRegistry(BroadcastConfig(app_id="1", key="k", secret="s"))
    channels.channel("a", lambda user: True)
    app = Flask(__name__)
    app.register_blueprint(blueprint(channels, header_user))
    app.register_blueprint(blueprint(channels, header_user, name="rt", url_prefix="/rt"))
    client = app.test_client()
    for prefix in ("/broadcasting", "/rt"):
        response = client.post(
            f"{prefix}/auth",
            data={"socket_id": "1.2", "channel_name": "private-a"},
            headers={USER_HEADER: "ana"},
        )
        assert response.status_code == 200


def test_a_form_already_read_by_an_extension_and_multipart_bodies() -> None:
    channels = ChannelRegistry(BroadcastConfig(app_id="1", key="k", secret="s"))
    channels.channel("a", lambda user: True)
    app = Flask(__name__)
    read_first: list[str] = []

    @app.before_request
    def csrf_like_extension() -> None:  # Flask-WTF's CSRFProtect reads request.form
        read_first.append(request.form.get("socket_id", ""))

    app.register_blueprint(blueprint(channels, header_user))
    client = app.test_client()
    form = client.post(
        "/broadcasting/auth",
        data={"socket_id": "1.2", "channel_name": "private-a"},
        headers={USER_HEADER: "ana"},
    )
    multipart = client.post(
        "/broadcasting/auth",
        data={"socket_id": "1.2", "channel_name": "private-a"},
        headers={USER_HEADER: "ana"},
        content_type="multipart/form-data",
    )
    assert (form.status_code, multipart.status_code) == (200, 200)
    assert form.get_json() == multipart.get_json()
    assert read_first == ["1.2", "1.2"]
