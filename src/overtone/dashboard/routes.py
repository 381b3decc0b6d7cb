"""The dashboard's HTTP routes (docs/dashboard.md): the page, its assets, JSON, actions.

:class:`Routes` is the dashboard's route set (:mod:`overtone.routing`): it answers one
request synchronously, or with the server-sent events feed, a :class:`~overtone.routing.Stream`
that the service (:mod:`overtone.dashboard.service`) writes to. Every route needs the
Basic credentials (:mod:`overtone.dashboard.access`); actions also need the
``X-Overtone-Dashboard`` header and a same-origin ``Origin``, and are logged.

Actions go through the HTTP API in-process with a request the server signs with the app's
secret, so a test event takes exactly the path of a server SDK's and the browser never sees
a secret.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import orjson

from overtone.apps import App
from overtone.dashboard.access import REALM, Gate, client_address, same_origin
from overtone.dashboard.console import Console
from overtone.dashboard.overview import channel_detail, channel_list
from overtone.http.api import Api
from overtone.http.static import content_type, packaged
from overtone.node import Node
from overtone.protocol.signatures import md5_hex, request_signature
from overtone.routing import Headers, Request, Response, Stream

log = logging.getLogger("overtone.dashboard")

NO_STORE = (b"Cache-Control", b"no-store")
PAGE_HEADERS = (
    NO_STORE,
    (
        b"Content-Security-Policy",
        b"default-src 'self'; img-src 'self' data:; object-src 'none'; "
        b"base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    ),
    (b"X-Frame-Options", b"DENY"),
    (b"X-Content-Type-Options", b"nosniff"),
    (b"Referrer-Policy", b"no-referrer"),
)
ASSETS = frozenset({"dashboard.js", "dashboard.css"})
MAX_NAME = 200


def _json(status: int, document: Any) -> Response:
    return Response(status, orjson.dumps(document), headers=(NO_STORE,))


def _error(status: int, message: str, *extra: tuple[bytes, bytes]) -> Response:
    return Response(status, orjson.dumps({"error": message}), headers=(NO_STORE, *extra))


class BadInput(Exception):
    """A request the dashboard cannot act on; answered 400 (or ``status``)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class Routes:
    """Answers every path under ``{prefix}/dashboard``."""

    def __init__(
        self,
        prefix: str,
        password: str | None,
        node: Node,
        api: Api,
        console: Console,
        overview: Callable[[bool], dict[str, Any]],
        feed: Callable[[], Stream],
    ) -> None:
        """``overview(with_series)`` builds the overview document and ``feed()`` opens the
        server-sent events feed (see the service)."""
        self.base = f"{prefix}/dashboard"
        self._below = self.base + "/"
        self.prefix = prefix
        self.gate = Gate(password) if password else None
        self.node = node
        self.api = api
        self.console = console
        self.overview = overview
        self.feed = feed

    def handles(self, path: str) -> bool:
        """Whether ``path`` is the dashboard's."""
        return path == self.base or path.startswith(self._below)

    def handle(self, request: Request, now: float) -> Response | Stream:
        """The answer to one request under the dashboard's path."""
        headers = request.headers
        address = client_address(request.peer, headers.get(b"x-forwarded-for"))
        if self.gate is None:
            return _error(404, "The dashboard is off: set OVERTONE_DASHBOARD_PASSWORD")
        refusal = self.gate.check(headers.get(b"authorization"), address, now)
        if refusal is not None:
            if refusal.status == 429:
                log.warning("dashboard: %s", refusal.message)
                return _error(429, refusal.message, (b"Retry-After", b"%d" % refusal.retry_after))
            return _error(401, refusal.message, (b"WWW-Authenticate", REALM))
        query = request.target.partition("?")[2]
        rest = request.path[len(self.base) :]
        try:
            return self._route(request.method, rest, query, headers, request.body, address, now)
        except BadInput as bad:
            return _error(bad.status, bad.message)

    def _route(
        self,
        method: str,
        rest: str,
        query: str,
        headers: Headers,
        body: bytes,
        address: str,
        now: float,
    ) -> Response | Stream:
        if rest in ("", "/", "/index.html") or rest.startswith("/static/"):
            if method not in ("GET", "HEAD"):
                return _error(405, "Use GET")
            if rest == "":  # relative, so that a prefix added by a proxy is kept
                return Response(301, b"", headers=((b"Location", b"dashboard/"),))
            return self._file(rest.removeprefix("/static/") if "/static/" in rest else "index.html")
        routes: dict[str, tuple[str, Callable[[], Response | Stream]]] = {
            "/api/overview": ("GET", lambda: _json(200, self.overview(True))),
            "/api/feed": ("GET", self.feed),
            "/api/channels": ("GET", lambda: self._channels(_query(query))),
            "/api/channel": ("GET", lambda: self._channel(_query(query), now)),
            "/api/trigger": ("POST", lambda: self._trigger(body, address, now)),
            "/api/terminate": ("POST", lambda: self._terminate(body, address, now)),
        }
        route = routes.get(rest)
        if route is None:
            return _error(404, f"No dashboard route {rest[:200]}")
        expected, answer = route
        if method != expected and not (expected == "GET" and method == "HEAD"):
            return _error(405, f"Use {expected}")
        if expected == "POST":
            if headers.get(b"x-overtone-dashboard") != b"1":
                return _error(403, "Actions need the header X-Overtone-Dashboard: 1")
            if not same_origin(headers.get(b"origin"), headers.get(b"host")):
                return _error(403, "Actions are only accepted from the dashboard's own origin")
        return answer()

    def _file(self, name: str) -> Response:
        if name != "index.html" and name not in ASSETS:
            return _error(404, f"No dashboard file {name[:100]}")
        found = packaged("dashboard", name)
        if found is None:
            return _error(500, f"overtone/static/dashboard/{name} is missing from the package")
        body, etag = found
        extra = PAGE_HEADERS if name == "index.html" else ((b"Cache-Control", b"no-cache"),)
        return Response(200, body, content_type(name), (*extra, (b"ETag", etag)))

    # -- reading -------------------------------------------------------------------------

    def _app(self, app_id: object) -> App:
        if not isinstance(app_id, str) or not app_id:
            raise BadInput("app is required (an app id)")
        app = self.node.registry.by_id(app_id)
        if app is None:
            raise BadInput(f"Unknown app id {app_id[:64]!r}", 404)
        return app

    def _channels(self, query: dict[str, str]) -> Response:
        hub = self.node.hub(self._app(query.get("app")))
        return _json(200, channel_list(hub, query.get("filter", "")[:MAX_NAME]))

    def _channel(self, query: dict[str, str], now: float) -> Response:
        hub = self.node.hub(self._app(query.get("app")))
        name = query.get("name", "")
        if not name or len(name) > MAX_NAME:
            raise BadInput(f"name is required (a channel name of at most {MAX_NAME} characters)")
        return _json(200, channel_detail(hub, name, now))

    # -- actions -------------------------------------------------------------------------

    def _trigger(self, body: bytes, address: str, now: float) -> Response:
        document = _object(body)
        app = self._app(document.get("app"))
        channel, event = document.get("channel"), document.get("event")
        if not isinstance(channel, str) or not channel:
            raise BadInput("channel is required")
        if not isinstance(event, str) or not event:
            raise BadInput("event is required")
        data = document.get("data", {})
        text = data if isinstance(data, str) else orjson.dumps(data).decode()
        payload = orjson.dumps({"name": event, "channel": channel, "data": text})
        answer = self._signed(app, "POST", f"/apps/{app.id}/events", payload, now)
        if answer.status != 200:
            return answer
        log.info("dashboard: %s sent test event %r to %s (app %s)", address, event, channel, app.id)
        self._action(app, f"test event sent by {address}", channel=channel, event=event)
        return _json(200, {"ok": True, "channel": channel, "event": event})

    def _terminate(self, body: bytes, address: str, now: float) -> Response:
        document = _object(body)
        app = self._app(document.get("app"))
        user_id = document.get("user_id")
        if not isinstance(user_id, str) or not user_id or len(user_id) > MAX_NAME:
            raise BadInput(f"user_id is required (at most {MAX_NAME} characters)")
        path = f"/apps/{app.id}/users/{quote(user_id, safe='')}/terminate_connections"
        answer = self._signed(app, "POST", path, b"{}", now)
        if answer.status != 200:
            return answer
        log.warning(
            "dashboard: %s terminated the connections of user %r (app %s)", address, user_id, app.id
        )
        self._action(app, f"connections of the user terminated by {address}", user_id=user_id)
        return _json(200, {"ok": True, "user_id": user_id})

    def _signed(self, app: App, method: str, path: str, body: bytes, now: float) -> Response:
        """Call the HTTP API in-process with a request signed with ``app``'s secret."""
        wall = time.time()
        params = [
            ("auth_key", app.key),
            ("auth_timestamp", str(int(wall))),
            ("auth_version", "1.0"),
            ("body_md5", md5_hex(body)),
        ]
        full_path = self.prefix + path
        params.append(("auth_signature", request_signature(app.secret, method, full_path, params)))
        answer = self.api.handle(method, f"{full_path}?{urlencode(params)}", body, now, wall)
        if answer.pending is not None:  # no action reads a stream; never expected
            return _error(503, "The action could not be completed now; retry")
        return answer

    def _action(self, app: App, message: str, **fields: Any) -> None:
        self.console.add(app.id, "dashboard_action", {"message": message, **fields})


def _query(query: str) -> dict[str, str]:
    try:
        return dict(parse_qsl(query, keep_blank_values=True))
    except ValueError:
        raise BadInput("Malformed query string") from None


def _object(body: bytes) -> dict[str, Any]:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadInput("The body must be a JSON object") from None
    if not isinstance(document, dict):
        raise BadInput("The body must be a JSON object")
    return document
