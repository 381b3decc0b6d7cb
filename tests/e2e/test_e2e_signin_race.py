"""sendToUser the moment sign-in succeeds, through a kept-alive SDK connection: never lost,
never twice, on one node and across a cluster (the event reaches the connection from its
sign-in on, before pusher-js's own subscribe to ``#server-to-user-{id}``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.test_redis_nodes import cluster_env
from e2e.e2e_helpers import Json, run_scenario
from e2e.test_e2e_cluster import joined_nodes
from support.redis_server import RedisServer
from support.servers import ServerProcess

pytestmark = pytest.mark.e2e


def assert_every_round_delivered_once(result: Json) -> None:
    rounds = result["rounds"]
    assert len(rounds) == 20
    for index, one in enumerate(rounds):
        assert one == {"status": 200, "received": [index]}, (index, one)


def test_send_to_user_right_after_signin_on_one_node(server: ServerProcess) -> None:
    assert_every_round_delivered_once(run_scenario(server, "signin_race", timeout=90))


@pytest.fixture
def two_nodes(tmp_path: Path, redis_server: RedisServer) -> Iterator[list[ServerProcess]]:
    with joined_nodes(tmp_path, cluster_env(redis_server), 2) as started:
        yield started


def test_send_to_user_right_after_signin_across_a_cluster(two_nodes: list[ServerProcess]) -> None:
    result = run_scenario(
        two_nodes[0],
        "signin_race",
        extra_env={"OVERTONE_SEND_AT": "1"},  # the client on node 0, the SDK on node 1
        timeout=90,
        peers=two_nodes[1:],
    )
    assert_every_round_delivered_once(result)
