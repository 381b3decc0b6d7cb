"""Operations endpoints: readiness for load balancers, Prometheus metrics.

- :mod:`~overtone.ops.routes`: ``/ready`` and ``/metrics`` as a route set.
- :mod:`~overtone.ops.metrics`: the collector that reads the hubs' counters at scrape time.

Nothing here imports the transport or the dashboard: the server hands the route set in.
"""
