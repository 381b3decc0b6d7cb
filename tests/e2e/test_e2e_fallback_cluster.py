"""pusher-js's HTTP fallback on three nodes behind an nginx that balances every request
round-robin (no stickiness, as an ALB target group by default): a streaming and a polling
client subscribe, exchange client events and get 100 events published through every node,
none lost or repeated."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from deploy.deploy_helpers import binary, start_nginx
from e2e.e2e_helpers import run_scenario
from e2e.test_e2e_cluster import assert_clean_logs, cluster_env, joined_nodes
from support.redis_server import RedisServer
from support.servers import free_port

pytestmark = pytest.mark.e2e


def test_fallback_sessions_behind_a_round_robin_balancer(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    binary("nginx")
    env = {**cluster_env(redis_server), "OVERTONE_HTTP_SESSION_TIMEOUT": "5"}
    with joined_nodes(tmp_path, env, 3) as nodes:
        port = free_port()
        upstream = "".join(f"server 127.0.0.1:{node.port}; " for node in nodes)
        upstreams = tmp_path / "upstreams.log"
        balancer_conf = (
            f"upstream overtone_nodes {{ {upstream}}}\n"  # round-robin, no stickiness
            "log_format upstream '$upstream_addr $request';\n"
            f"server {{ listen 127.0.0.1:{port}; access_log {upstreams} upstream;\n"
            "  location / { proxy_pass http://overtone_nodes; proxy_http_version 1.1;\n"
            '    proxy_set_header Connection ""; proxy_buffering off;\n'
            "    proxy_read_timeout 120s; } }\n"
        )
        (tmp_path / "nginx").mkdir()
        balancer = start_nginx(tmp_path / "nginx", balancer_conf, port)
        try:
            result = run_scenario(replace(nodes[0], port=port), "fallback_cluster", timeout=120)
        finally:
            balancer.stop()
        assert_clean_logs(nodes)
        served = upstreams.read_text()
    assert result["transports"] == ["xhr_streaming", "xhr_polling"]
    # None lost, none repeated. (Events published through different nodes are ordered by
    # the broker, which may differ from the order the publisher sent them in: pusher-js
    # over WebSockets sees the same.)
    for ticks in (result["a_ticks"], result["b_ticks"]):
        assert sorted(ticks) == list(range(1, 101)), ticks
    assert result["a_notes"] == ["b"] and result["b_notes"] == ["a"]
    # Every node served requests of the fallback sessions (the balancer's own log).
    fallback_lines = [line for line in served.splitlines() if "/pusher/app/" in line]
    for node in nodes:
        assert any(line.startswith(f"127.0.0.1:{node.port} ") for line in fallback_lines)
