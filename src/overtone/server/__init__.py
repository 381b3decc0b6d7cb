"""The server assembled from its parts (:mod:`~overtone.server.compose`) and run as a
process (:mod:`~overtone.server.run`).

- :mod:`~overtone.server.api_routes`: the HTTP API as a route set, timed for ``/metrics``.
- :mod:`~overtone.server.cluster_link`: the coordinator wired to a broker.
- :mod:`~overtone.server.webhooks`: webhook delivery.
"""

from overtone.server.compose import Server
from overtone.server.run import WORKER_ENV, serve

__all__ = ["WORKER_ENV", "Server", "serve"]
