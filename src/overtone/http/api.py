"""Routes and handlers of the HTTP API, on the same port as the WebSocket endpoint.

:meth:`Api.handle` is synchronous and pure apart from what it asks the hubs to do; the
transport passes the clocks in. Every error is JSON ``{"error": "..."}`` with the status
of protocol.md §5.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any
from urllib.parse import unquote

import orjson

from overtone.apps import App
from overtone.http.auth import request_auth_error
from overtone.http.events import BadRequest, Trigger, parse_json, parse_trigger
from overtone.http.history import MAX_HISTORY_LIMIT, history_page
from overtone.http.query import query_pairs
from overtone.http.static import RECOVERY_JS_PATH, recovery_js
from overtone.hub import Hub
from overtone.node import Node
from overtone.protocol.channel_names import name_error
from overtone.routing import Pending, Response

HEALTH = orjson.dumps({"health": "OK"})


# The dataclasses made per request are not frozen: a frozen dataclass's __init__ takes
# twice as long. Treat them as read-only.


class _Unknown(Exception):
    """A handler needs a stream this node does not follow yet."""

    def __init__(self, channel: str) -> None:
        super().__init__(channel)
        self.channel = channel


@dataclass(slots=True)
class Call:
    """An authenticated request, ready for its handler."""

    hub: Hub
    app: App
    query: dict[str, str]
    body: bytes
    arg: str
    now: float
    loaded: bool = False
    """The stream the request reads was just loaded (or could not be): do not wait again."""


def _error(status: int, message: str) -> Response:
    return Response(status, orjson.dumps({"error": message}))


def _ok(document: Any) -> Response:
    return Response(200, orjson.dumps(document))


class Api:
    """The HTTP API of one server process."""

    def __init__(self, node: Node, prefix: str = "", signature_window: int = 600) -> None:
        self.node = node
        self.prefix = prefix
        self.signature_window = signature_window

    def handle(
        self, method: str, target: str, body: bytes, now: float, wall_time: float
    ) -> Response:
        """Answer one request; ``target`` is the raw request target (path and query).

        An answer with :attr:`~overtone.routing.Response.pending` set (history in a
        cluster) is not ready: it comes from ``pending.answer()`` once its stream has been
        loaded (``pending.wait``).
        """
        raw_path, _, query = target.partition("?")
        path = raw_path
        if self.prefix and (path == self.prefix or path.startswith(self.prefix + "/")):
            path = path[len(self.prefix) :] or "/"
        if path == "/up":
            return Response(200, HEALTH) if method in ("GET", "HEAD") else _error(405, "Use GET")
        if path == RECOVERY_JS_PATH:
            return Response(*recovery_js(method))
        parts = path.strip("/").split("/")
        params = query_pairs(query)
        fields = dict(params)
        if len(parts) == 3 and parts[0] == "users":
            # pusher-http-python sends terminate_connections without /apps/{id}: the app
            # is the one whose key signed the request.
            app_key = fields.get("auth_key", "")
            found = self.node.registry.by_key(app_key)
            parts = ["apps", found.id if found else "", *parts]
        if len(parts) < 3 or parts[0] != "apps":
            return _error(404, f"No route for {raw_path[:200]}")
        route = _route(parts[2:])
        if route is None:
            return _error(404, f"No route for {raw_path[:200]}")
        expected_method, handler_name, arg = route
        if method != expected_method:
            return _error(405, f"{raw_path[:200]} expects {expected_method}, not {method}")
        app = self.node.registry.by_id(unquote(parts[1]))
        if app is None:
            return _error(404, f"Unknown app id {unquote(parts[1])[:64]!r}")
        paths = (raw_path, path) if raw_path != path else (raw_path,)
        problem = request_auth_error(
            app, method, paths, params, fields, body, wall_time, self.signature_window
        )
        if problem is not None:
            return _error(401, problem)
        if not app.enabled:
            return _error(403, "Application is disabled")
        hub = self.node.hub(app)
        hub.stats.api_requests += 1
        handler = getattr(self, handler_name)
        call = Call(hub, app, fields, body, arg, now)
        try:
            response: Response = handler(call)
        except BadRequest as bad:
            return _error(bad.status, bad.message)
        except _Unknown as unknown:
            # Answered once this node has read the stream from the cluster's store.
            again = partial(_answer, handler, replace(call, loaded=True))
            wait = partial(hub.when_loaded, unknown.channel)
            return Response(202, b"", pending=Pending(wait, again))
        return response

    # -- handlers ----------------------------------------------------------------------

    def _events(self, call: Call) -> Response:
        trigger = parse_trigger(call.app, parse_json(call.body))
        call.hub.publish(trigger.name, trigger.channels, trigger.data, trigger.socket_id, call.now)
        if not trigger.info:
            return Response(200, b"{}")
        return _ok({"channels": {c: _info(call.hub, c, trigger.info) for c in trigger.channels}})

    def _batch(self, call: Call) -> Response:
        document = parse_json(call.body)
        batch = document.get("batch") if isinstance(document, dict) else None
        if not isinstance(batch, list):
            raise BadRequest(400, 'Body must be {"batch": [events...]}')
        if len(batch) > call.app.max_batch_size:
            raise BadRequest(400, f"A batch holds at most {call.app.max_batch_size} events")
        triggers: list[Trigger] = [
            parse_trigger(call.app, item, f"batch[{i}]: ") for i, item in enumerate(batch)
        ]
        for t in triggers:
            call.hub.publish(t.name, t.channels, t.data, t.socket_id, call.now)
        if not any(t.info for t in triggers):
            return Response(200, b"{}")
        return _ok({"batch": [_info(call.hub, t.channels[0], t.info) for t in triggers]})

    def _channels(self, call: Call) -> Response:
        prefix = call.query.get("filter_by_prefix", "")
        info = _info_fields(call.query)
        if "user_count" in info and not prefix.startswith("presence-"):
            raise BadRequest(400, "info=user_count needs filter_by_prefix=presence-")
        channels = {
            name: _info(call.hub, name, info)
            for name in sorted(call.hub.channel_names())
            if name.startswith(prefix)
        }
        return _ok({"channels": channels})

    def _channel(self, call: Call) -> Response:
        info = _info_fields(call.query)
        name = call.arg
        if "user_count" in info and not name.startswith("presence-"):
            raise BadRequest(400, "info=user_count is only available for presence channels")
        document: dict[str, Any] = {"occupied": call.hub.subscription_count(name) > 0}
        document.update(_info(call.hub, name, info))
        if "cache" in info:
            document["cache"] = call.hub.cached_event(name, call.now)
        if "position" in info and call.hub.history is not None:
            _check_name(name)
            _follow(call, name)
            document["position"] = call.hub.history.position(name, call.now).to_wire()
        return _ok(document)

    def _history(self, call: Call) -> Response:
        history = call.hub.history
        if history is None:
            raise BadRequest(400, "History is off for this app (OVERTONE_HISTORY_ENABLED)")
        _check_name(call.arg)
        since = _int_param(call.query, "since", 0, 0, None)
        limit = _int_param(call.query, "limit", 100, 1, MAX_HISTORY_LIMIT)
        _follow(call, call.arg)
        return _ok(history_page(history, call.arg, call.query.get("epoch"), since, limit, call.now))

    def _users(self, call: Call) -> Response:
        if not call.arg.startswith("presence-"):
            raise BadRequest(400, "Users can only be listed for presence channels")
        return _ok({"users": [{"id": uid} for uid in call.hub.user_ids(call.arg)]})

    def _terminate(self, call: Call) -> Response:
        call.hub.terminate_user(call.arg)
        return Response(200, b"{}")

    def _connections(self, call: Call) -> Response:
        return _ok({"connections": call.hub.connection_count()})


def _route(rest: list[str]) -> tuple[str, str, str] | None:
    """``(method, handler, argument)`` for the path after ``/apps/{id}/``."""
    match rest:
        case ["events"]:
            return "POST", "_events", ""
        case ["batch_events"]:
            return "POST", "_batch", ""
        case ["channels"]:
            return "GET", "_channels", ""
        case ["channels", name]:
            return "GET", "_channel", unquote(name)
        case ["channels", name, "history"]:
            return "GET", "_history", unquote(name)
        case ["channels", name, "users"]:
            return "GET", "_users", unquote(name)
        case ["users", user_id, "terminate_connections"]:
            return "POST", "_terminate", unquote(user_id)
        case ["connections"]:
            return "GET", "_connections", ""
    return None


def _answer(handler: Callable[[Call], Response], call: Call) -> Response:
    try:
        return handler(call)
    except BadRequest as bad:
        return _error(bad.status, bad.message)


def _follow(call: Call, name: str) -> None:
    """In a cluster, make sure this node follows stream ``name`` before reading it."""
    hub, history = call.hub, call.hub.history
    if history is None or hub.load_stream is None or name in history.streams:
        return
    if not call.loaded:
        raise _Unknown(name)
    raise BadRequest(503, "The cluster's history store (Redis) is unreachable; retry later")


def _check_name(name: str) -> None:
    problem = name_error(name)
    if problem is not None:
        raise BadRequest(400, problem)


def _int_param(
    query: dict[str, str], key: str, default: int, minimum: int, maximum: int | None
) -> int:
    raw = query.get(key)
    if raw is None or raw == "":
        return default
    digits = raw[1:] if raw.startswith("-") else raw
    if not (digits.isascii() and digits.isdigit()):  # int() would take "+5", " 5", "1_0"
        raise BadRequest(400, f"{key} must be an integer, not {raw[:32]!r}")
    value = int(raw)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise BadRequest(400, f"{key} must be {bound}")
    return value


def _info_fields(query: dict[str, str]) -> tuple[str, ...]:
    return tuple(f for f in query.get("info", "").split(",") if f)


def _info(hub: Hub, channel: str, fields: tuple[str, ...]) -> dict[str, int]:
    info: dict[str, int] = {}
    if "subscription_count" in fields:
        info["subscription_count"] = hub.subscription_count(channel)
    if "user_count" in fields and channel.startswith("presence-"):
        info["user_count"] = hub.user_count(channel)
    return info
