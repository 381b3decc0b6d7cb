"""Fixtures of the cluster tests: one real Redis Cluster shared by the whole session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from support.redis_ha import RedisClusterSet


@pytest.fixture(scope="session")
def redis_cluster_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterSet]:
    """Three primaries created once (creating a cluster takes seconds)."""
    cluster = RedisClusterSet(tmp_path_factory.mktemp("redis-cluster"))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def redis_cluster(redis_cluster_session: RedisClusterSet) -> RedisClusterSet:
    """A real 3-primary Redis Cluster, running and empty at the start of each test."""
    cluster = redis_cluster_session
    if not cluster.running():
        cluster.restart()
    cluster.flush()
    return cluster


@pytest_asyncio.fixture(autouse=True)
async def closed_clients_settle() -> AsyncIterator[None]:
    """After each test, let the event loop finish closing the clients' transports (a test
    usually closes them on its last line; the loop ends right after, and a transport still
    closing would be reported as unclosed later, in whichever test the collector runs)."""
    yield
    await asyncio.sleep(0.05)
