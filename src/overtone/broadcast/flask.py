"""laravel-echo's auth endpoints as a Flask blueprint (``pip install flask``).

::

    from overtone.broadcast.flask import blueprint
    app.register_blueprint(blueprint(channels, lambda request: current_user or None))

adds ``POST /broadcasting/auth`` and ``POST /broadcasting/user-auth`` (form-encoded as
pusher-js sends them, multipart, or JSON). ``user_resolver(request)`` returns the user or ``None``
(403); with Flask-Login, return ``current_user`` only when ``is_authenticated``. Answers are
those of :mod:`.endpoints`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, request

from overtone.broadcast.channels import ChannelRegistry
from overtone.broadcast.endpoints import MAX_BODY, Kind, answer, handle, is_json

UserResolver = Callable[[Any], Any]
"""``(request) -> user | None``; ``request`` is Flask's request proxy."""


def blueprint(
    registry: ChannelRegistry,
    user_resolver: UserResolver,
    *,
    name: str = "overtone_broadcasting",
    url_prefix: str = "/broadcasting",
) -> Blueprint:
    """A blueprint with ``POST {url_prefix}/auth`` and ``POST {url_prefix}/user-auth``."""
    routes = Blueprint(name, __name__, url_prefix=url_prefix)
    routes.add_url_rule(
        "/auth", "auth", _view(registry, user_resolver, "channel"), methods=["POST"]
    )
    routes.add_url_rule(
        "/user-auth", "user_auth", _view(registry, user_resolver, "user"), methods=["POST"]
    )
    return routes


def _view(
    registry: ChannelRegistry, user_resolver: UserResolver, kind: Kind
) -> Callable[[], Response]:
    def view() -> Response:
        user = user_resolver(request)
        if is_json(request.content_type):
            body = request.stream.read(MAX_BODY + 1)
            result = handle(registry, kind, request.content_type, body, user)
        else:  # Werkzeug's parser: CSRF extensions may already have read the form
            result = answer(registry, kind, request.form.to_dict(), user)
        return Response(result.content(), status=result.status, mimetype="application/json")

    return view
