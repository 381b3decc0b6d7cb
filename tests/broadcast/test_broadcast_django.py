"""The Django views, driven by Django's test Client, used on the real server."""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import ModuleType, SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import pytest

django = pytest.importorskip("django")

from django.conf import settings  # type: ignore[import-untyped]  # noqa: E402

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="tests-only",
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=["django.middleware.csrf.CsrfViewMiddleware"],
        INSTALLED_APPS=[],
        USE_TZ=True,
    )
    django.setup()

from django.test import Client, override_settings  # type: ignore[import-untyped]  # noqa: E402

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
from overtone.broadcast.django import authenticated_user, urls  # noqa: E402
from support.servers import ServerProcess  # noqa: E402

urlpatterns: list[Any] = []  # ROOT_URLCONF until a test overrides it
META_USER = "HTTP_" + USER_HEADER.upper().replace("-", "_")


def urlconf(patterns: list[Any]) -> ModuleType:
    """A URLconf for one test (``override_settings(ROOT_URLCONF=...)`` clears the caches)."""
    module = ModuleType("test_urls")
    module.urlpatterns = patterns  # type: ignore[attr-defined]
    return module


def header_user(request: Any) -> dict[str, Any] | None:
    return user_named(request.META.get(META_USER))


def poster(client: Any) -> Post:
    def post(
        path: str, params: Mapping[str, str], user: str | None, as_json: bool
    ) -> tuple[int, Any]:
        extra = {META_USER: user} if user else {}
        if as_json:
            body, kind = json.dumps(dict(params)), "application/json"
        else:
            body, kind = urlencode(dict(params)), "application/x-www-form-urlencoded"
        response = client.post(path, body, content_type=kind, **extra)
        assert response["Content-Type"] == "application/json"
        return int(response.status_code), json.loads(response.content)

    return post


async def test_django_urls_authorize_real_subscriptions(server: ServerProcess, ws: Connect) -> None:
    conf = urlconf(urls(registry_for(config_for(server)), header_user))
    with override_settings(ROOT_URLCONF=conf):
        client = Client()
        await exercise_endpoints(poster(client), server, ws)
        assert client.get("/broadcasting/auth").status_code == 405


def test_csrf_protection_stays_on_unless_exempted() -> None:
    channels = ChannelRegistry(BroadcastConfig(app_id="1", key="k", secret="s"))
    channels.channel("a", lambda user: True)
    body = "socket_id=1.2&channel_name=private-a"
    form = "application/x-www-form-urlencoded"
    client = Client(enforce_csrf_checks=True)
    guarded = urlconf(urls(channels, header_user))
    with override_settings(ROOT_URLCONF=guarded):
        response = client.post("/broadcasting/auth", body, content_type=form, **{META_USER: "ana"})
        assert response.status_code == 403 and b"CSRF" in response.content
    exempt = urlconf(urls(channels, header_user, csrf_exempt=True))
    with override_settings(ROOT_URLCONF=exempt):
        response = client.post("/broadcasting/auth", body, content_type=form, **{META_USER: "ana"})
        assert response.status_code == 200 and "auth" in json.loads(response.content)


def test_with_a_csrf_token_the_form_read_by_the_middleware_still_reaches_the_view() -> None:
    channels = ChannelRegistry(BroadcastConfig(app_id="1", key="k", secret="s"))
    channels.channel("a", lambda user: True)
    client = Client(enforce_csrf_checks=True)
    token = "t" * 32
    client.cookies["csrftoken"] = token
    with override_settings(ROOT_URLCONF=urlconf(urls(channels, header_user))):
        form = client.post(
            "/broadcasting/auth",
            "socket_id=1.2&channel_name=private-a",
            content_type="application/x-www-form-urlencoded",
            HTTP_X_CSRFTOKEN=token,
            **{META_USER: "ana"},
        )
        multipart = client.post(
            "/broadcasting/user-auth",
            {"socket_id": "1.2"},
            HTTP_X_CSRFTOKEN=token,
            **{META_USER: "ana"},
        )
    assert form.status_code == 200, form.content
    assert multipart.status_code == 200, multipart.content
    assert json.loads(multipart.content)["user_data"] == '{"id": "7"}'


def test_the_default_user_is_the_authenticated_request_user() -> None:
    signed_in = SimpleNamespace(is_authenticated=True, pk=3)
    anonymous = SimpleNamespace(is_authenticated=False, pk=None)
    assert authenticated_user(SimpleNamespace(user=signed_in)) is signed_in
    assert authenticated_user(SimpleNamespace(user=anonymous)) is None
    assert authenticated_user(SimpleNamespace()) is None
