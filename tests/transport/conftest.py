"""An in-process server on port 0 for transport tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from overtone.server import Server
from support.inprocess import start


@pytest_asyncio.fixture
async def live() -> AsyncIterator[Server]:
    server = await start()
    yield server
    await server.shutdown()
