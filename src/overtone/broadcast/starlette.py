"""laravel-echo's auth endpoints for Starlette and FastAPI (``pip install starlette``).

::

    from overtone.broadcast.starlette import install
    install(app, channels, current_user)      # app: FastAPI or Starlette

or ``Starlette(routes=[*routes(channels, current_user), ...])``. This adds
``POST /broadcasting/auth`` and ``POST /broadcasting/user-auth`` (form-encoded as pusher-js
sends them, or JSON). ``current_user(request)`` returns the user or ``None`` (403) and may
be ``async``; so may the channel callbacks and ``user_data``. A sync callback runs on the
event loop: keep it quick, or make it ``async``. Answers are those of :mod:`.endpoints`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from overtone.broadcast.channels import ChannelRegistry
from overtone.broadcast.endpoints import MAX_BODY, AuthResponse, Kind, handle_async

UserResolver = Callable[[Request], Any]
"""``(request) -> user | None``, or an awaitable of it."""

Endpoint = Callable[[Request], Awaitable[Response]]


def endpoint(registry: ChannelRegistry, user_resolver: UserResolver, kind: Kind) -> Endpoint:
    """The ASGI endpoint answering one kind of authorization request."""

    async def answer(request: Request) -> Response:
        user = user_resolver(request)
        if inspect.isawaitable(user):
            user = await user
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                break
        content_type = request.headers.get("content-type")
        return _response(await handle_async(registry, kind, content_type, bytes(body), user))

    return answer


def routes(
    registry: ChannelRegistry, user_resolver: UserResolver, *, prefix: str = "/broadcasting"
) -> list[Route]:
    """``POST {prefix}/auth`` and ``POST {prefix}/user-auth`` as Starlette routes."""
    return [
        Route(
            f"{prefix}/auth",
            endpoint(registry, user_resolver, "channel"),
            methods=["POST"],
            name="broadcasting-auth",
        ),
        Route(
            f"{prefix}/user-auth",
            endpoint(registry, user_resolver, "user"),
            methods=["POST"],
            name="broadcasting-user-auth",
        ),
    ]


def install(
    app: Starlette,
    registry: ChannelRegistry,
    user_resolver: UserResolver,
    *,
    prefix: str = "/broadcasting",
) -> None:
    """Add both endpoints to a Starlette or FastAPI application."""
    app.router.routes.extend(routes(registry, user_resolver, prefix=prefix))


def _response(result: AuthResponse) -> Response:
    return Response(result.content(), status_code=result.status, media_type="application/json")
