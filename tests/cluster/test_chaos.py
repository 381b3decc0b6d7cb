"""Chaos under load (benchmarks/chaos.py in a small configuration): three nodes on one Redis,
60 subscribers, events published continuously while a node is SIGKILLed and started again
and Redis is restarted empty. Nothing is delivered twice, a recovering client loses nothing
silently across the kill, and afterwards every node's counts are exact (no ghost members)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from cluster.test_redis_nodes import cluster_env
from support.redis_server import RedisServer
from support.servers import APP_ID, APP_KEY, APP_SECRET, ServerProcess, scaled, start_server

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout: benchmarks

from benchmarks.chaos import Plan, run_chaos, table
from benchmarks.credentials import Creds
from benchmarks.localprocs import REACHABLE, wait_reachable


class Cluster:
    """The scenario's controller, on the suite's own process helpers."""

    def __init__(self, tmp_path: Path, redis: RedisServer, nodes: int) -> None:
        self.creds = Creds(APP_ID, APP_KEY, APP_SECRET)
        self.tmp_path = tmp_path
        self.redis = redis
        # A node silent for 2.5 s is dead: short, but not so short that a busy machine
        # declares a live node dead.
        self.env = {**cluster_env(redis), "OVERTONE_NODE_TIMEOUT": "2.5"}
        self.nodes: list[ServerProcess] = []
        for _ in range(nodes):
            self.nodes.append(start_server(tmp_path, self.env))

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def kill(self, index: int) -> None:
        self.nodes[index].process.send_signal(signal.SIGKILL)
        self.nodes[index].process.wait(scaled(10))

    def restart(self, index: int) -> None:
        port = self.nodes[index].port
        self.nodes[index] = start_server(self.tmp_path, self.env, port=port)

    def restart_redis(self) -> None:
        before = [node.log().count(REACHABLE) for node in self.nodes]
        self.redis.stop()
        self.redis.start()
        wait_reachable([node.log for node in self.nodes], before, scaled(20))

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


async def test_chaos_under_load(tmp_path: Path, redis_server: RedisServer) -> None:
    cluster = Cluster(tmp_path, redis_server, 3)
    plan = Plan(
        plain=20,
        recovering=20,
        presence=20,
        rate=20.0,
        warmup=3.0,
        down=2.0,
        between=3.0,
        after=3.0,
        drain=1.5,
        settle=scaled(12),
        slack=1.0,
    )
    try:
        result = await run_chaos(plan, cluster)
    finally:
        cluster.stop()
    print(table(result))
    classes = result["classes"]
    assert result["published"] >= plan.rate * 8  # the load kept going through it all
    for kind, row in classes.items():
        assert row["clients"] == 20, kind
        assert row["duplicated"] == 0, (kind, row)
        # Plain clients lose only what was published while a failure was under way.
        assert "other" not in row["lost_by_window"], (kind, row)
    recovering = classes["recovering"]
    # The killed node's recovering clients came back on another node with recovered: true.
    assert recovering["recovered_true"] >= 1, recovering
    # Recovering clients lost nothing silently: across the kill and restart they recovered;
    # through the Redis restart (empty, so every stream starts a new epoch) their nodes told
    # them to reload, unasked, on their running subscription.
    assert recovering["silent"] == 0, recovering
    assert recovering["recovered_false"] >= 1, recovering
    counts = result["counts"]
    assert counts["exact"], counts  # subscription counts, presence users, connections
