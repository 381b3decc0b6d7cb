"""The only network code: one asyncio listener serving WebSocket and the HTTP API."""
