"""laravel-echo's auth endpoints as Django views (``pip install django``).

::

    # urls.py
    from overtone.broadcast.django import urls
    urlpatterns = [..., *urls(channels)]

adds ``POST /broadcasting/auth`` and ``POST /broadcasting/user-auth`` (form-encoded as
pusher-js sends them, multipart, or JSON). The default user is ``request.user`` when authenticated;
pass ``user_resolver`` to choose another. Django's CSRF protection stays on: give Echo the
token, ``auth: {headers: {"X-CSRFToken": csrftoken}}`` (and the same in
``userAuthentication``), or pass ``csrf_exempt=True``. Answers are those of
:mod:`.endpoints`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse  # type: ignore[import-untyped]
from django.urls import URLPattern, path  # type: ignore[import-untyped]
from django.views.decorators.csrf import csrf_exempt as exempt  # type: ignore[import-untyped]
from django.views.decorators.http import require_POST  # type: ignore[import-untyped]

from overtone.broadcast.channels import ChannelRegistry
from overtone.broadcast.endpoints import MAX_BODY, Kind, answer, handle, is_json

UserResolver = Callable[[Any], Any]
"""``(request) -> user | None``."""

View = Callable[[Any], Any]


def authenticated_user(request: Any) -> Any:
    """``request.user`` when it is authenticated, else ``None``."""
    user = getattr(request, "user", None)
    return user if user is not None and getattr(user, "is_authenticated", False) else None


def auth_view(
    registry: ChannelRegistry,
    user_resolver: UserResolver = authenticated_user,
    *,
    kind: Kind = "channel",
    csrf_exempt: bool = False,
) -> View:
    """A POST-only view answering one kind of authorization request."""

    def view(request: HttpRequest) -> HttpResponse:
        user = user_resolver(request)
        if is_json(request.content_type):
            result = handle(registry, kind, request.content_type, request.read(MAX_BODY + 1), user)
        else:  # Django's parser: the CSRF middleware may already have read the form
            result = answer(registry, kind, request.POST.dict(), user)
        return HttpResponse(result.content(), status=result.status, content_type="application/json")

    wrapped: View = require_POST(view)
    return exempt(wrapped) if csrf_exempt else wrapped


def urls(
    registry: ChannelRegistry,
    user_resolver: UserResolver = authenticated_user,
    *,
    prefix: str = "broadcasting/",
    csrf_exempt: bool = False,
) -> list[URLPattern]:
    """URL patterns for ``{prefix}auth`` and ``{prefix}user-auth``."""
    channel = auth_view(registry, user_resolver, kind="channel", csrf_exempt=csrf_exempt)
    user = auth_view(registry, user_resolver, kind="user", csrf_exempt=csrf_exempt)
    return [
        path(f"{prefix}auth", channel, name="broadcasting-auth"),
        path(f"{prefix}user-auth", user, name="broadcasting-user-auth"),
    ]
