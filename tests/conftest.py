"""Fixtures shared by every test directory."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support.redis_server import RedisServer, start_redis
from support.servers import ServerProcess, start_server
from support.webhook_sink import WebhookSink


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A real ``overtone start`` subprocess serving the test app on a free port."""
    proc = start_server(tmp_path)
    yield proc
    proc.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real ``redis-server`` on a free port (skipped when the binary is missing)."""
    server = start_redis(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    """A real local HTTP endpoint recording the webhook requests it gets (answers 200)."""
    endpoint = WebhookSink().start()
    yield endpoint
    endpoint.stop()
