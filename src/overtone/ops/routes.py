"""``/ready`` and ``/metrics``, served next to the API as a route set.

``/ready`` answers 503 while the node drains or while its cluster broker is unreachable, so
a load balancer stops sending new clients to it; ``/up`` (liveness, the API's) stays 200
meanwhile. ``/metrics`` renders the plain counters of every hub at scrape time with
``prometheus_client``; with ``OVERTONE_METRICS_TOKEN`` set it needs
``Authorization: Bearer <token>`` (or ``?token=``).
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.process_collector import ProcessCollector

from overtone.ops.metrics import Observed, OvertoneCollector
from overtone.routing import Request, Response


def readiness(server: Observed) -> tuple[int, bytes]:
    """``/ready``: 200 when this node should get new clients, else 503 with the reason."""
    if server.draining:
        return 503, orjson.dumps({"ready": False, "reason": "draining"})
    if server.broker is not None and not server.broker.connected:
        return 503, orjson.dumps({"ready": False, "reason": "cluster broker unreachable"})
    return 200, orjson.dumps({"ready": True})


def metrics_allowed(token: str | None, target: str, authorization: bytes | None) -> bool:
    """Whether a scrape is authorised (always, when no token is configured)."""
    if not token:
        return True
    given = ""
    if authorization is not None and authorization.lower().startswith(b"bearer "):
        given = authorization[7:].decode("latin-1").strip()
    if not given:
        given = parse_qs(target.partition("?")[2]).get("token", [""])[-1]
    return hmac.compare_digest(given.encode(), token.encode())


class OpsRoutes:
    """The route set of ``{prefix}/ready`` and ``{prefix}/metrics``."""

    def __init__(self, server: Observed, prefix: str, metrics_token: str | None) -> None:
        self.server = server
        self.ready_path = f"{prefix}/ready"
        self.metrics_path = f"{prefix}/metrics"
        self.metrics_token = metrics_token
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(OvertoneCollector(server))
        self.registry.register(ProcessCollector(registry=None))

    def handles(self, path: str) -> bool:
        """Whether ``path`` is one of the operations endpoints."""
        return path in (self.ready_path, self.metrics_path)

    def handle(self, request: Request, now: float) -> Response:
        """The answer to an operations request."""
        if request.path == self.ready_path:
            status, body = readiness(self.server)
            return Response(status, body)
        authorization = request.headers.get(b"authorization")
        if not metrics_allowed(self.metrics_token, request.target, authorization):
            return Response(401, orjson.dumps({"error": "metrics need a valid bearer token"}))
        return Response(200, generate_latest(self.registry), CONTENT_TYPE_LATEST.encode())
