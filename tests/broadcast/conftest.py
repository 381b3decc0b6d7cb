"""Fixtures of the broadcast tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest_asyncio

from support.rawws import RawClient
from support.servers import APP_KEY

Connect = Callable[..., Awaitable[tuple[RawClient, str]]]


@pytest_asyncio.fixture
async def ws() -> AsyncIterator[Connect]:
    """``await ws(port[, path])``: a raw WebSocket client and its socket id, closed after."""
    opened: list[RawClient] = []

    async def connect(port: int, path: str = f"/app/{APP_KEY}?protocol=7") -> tuple[RawClient, str]:
        client = await RawClient.connect(port, path)
        opened.append(client)
        return client, await client.established()

    yield connect
    for client in opened:
        client.close()
        await client.writer.wait_closed()
