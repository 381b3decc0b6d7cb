"""An in-process server on a free port, for transport tests."""

from __future__ import annotations

from overtone.config import load_settings
from overtone.server import Server

BASE_ENV = {
    "REVERB_APP_ID": "123456",
    "REVERB_APP_KEY": "test-key",
    "REVERB_APP_SECRET": "test-secret",
    "REVERB_SERVER_HOST": "127.0.0.1",
    "REVERB_SERVER_PORT": "0",
    "OVERTONE_HTTP_TIMEOUT": "0.5",
    "OVERTONE_MAX_WRITE_BUFFER": "65536",
    "OVERTONE_SHUTDOWN_TIMEOUT": "2",
}


async def start(**extra: str) -> Server:
    """Start a server with the test app (variables in ``extra`` win)."""
    server = Server(load_settings({**BASE_ENV, **extra}))
    await server.start()
    return server
