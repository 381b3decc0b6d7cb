"""Webhook delivery (protocol.md §6): batched, signed, retried, never in the way.

The hub hands events to :meth:`WebhookSender.enqueue`, which only appends to a bounded
queue; a background task groups each app's events for up to ``BATCH_WINDOW`` seconds (at
most ``BATCH_MAX`` per request) and POSTs ``{"time_ms", "events"}`` to each of the app's URLs
with ``X-Pusher-Key`` and ``X-Pusher-Signature`` (hex HMAC-SHA256 of the body with the app
secret). A non-2xx answer or a network error is retried with exponential backoff for up to
``RETRY_FOR`` seconds; each attempt is stamped and signed anew, so receivers that check
``time_ms`` freshness (the Pusher SDKs' validators do) accept late deliveries. Past
``QUEUE_MAX`` pending events, new ones are dropped, counted, and logged at most once a minute.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections import deque
from typing import Any

import httpx
import orjson

from overtone.apps import App

log = logging.getLogger("overtone.webhooks")

BATCH_WINDOW = 0.05
BATCH_MAX = 100
QUEUE_MAX = 10_000
RETRY_FOR = 300.0
FIRST_RETRY = 1.0
TIMEOUT = 5.0


def signed_body(
    app: App, events: list[dict[str, Any]], now_ms: int
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one webhook request."""
    body = orjson.dumps({"time_ms": now_ms, "events": events})
    signature = hmac.new(app.secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-Pusher-Key": app.key,
        "X-Pusher-Signature": signature,
    }
    return body, headers


class WebhookSender:
    """Queues, batches and delivers the webhook events of every app of this node."""

    def __init__(self) -> None:
        self._queue: deque[tuple[App, dict[str, Any]]] = deque()
        self._wake = asyncio.Event()
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._retries: set[asyncio.Task[None]] = set()
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._last_drop_log = float("-inf")

    @property
    def queued(self) -> int:
        """Events waiting to be sent (retries included)."""
        return len(self._queue) + len(self._retries)

    def start(self) -> None:
        """Start the delivery task."""
        self._client = httpx.AsyncClient(timeout=TIMEOUT)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="webhooks")

    def enqueue(self, app: App, event: dict[str, Any]) -> None:
        """Queue one event of ``app`` (O(1), never blocks; drops past the bound)."""
        if len(self._queue) + len(self._retries) * BATCH_MAX >= QUEUE_MAX:
            self.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_log >= 60:
                self._last_drop_log = now
                log.warning("webhook queue full: %d event(s) dropped so far", self.dropped)
            return
        self._queue.append((app, event))
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(BATCH_WINDOW)  # let a burst gather into one request
            self._wake.clear()
            batches: dict[str, tuple[App, list[dict[str, Any]]]] = {}
            while self._queue:
                app, event = self._queue.popleft()
                batch = batches.setdefault(app.id, (app, []))[1]
                batch.append(event)
                if len(batch) >= BATCH_MAX:
                    self._deliver_all(app, batch)
                    batches[app.id] = (app, [])
            for app, batch in batches.values():
                if batch:
                    self._deliver_all(app, batch)

    def _deliver_all(self, app: App, events: list[dict[str, Any]]) -> None:
        for url in app.webhook_urls:
            task = asyncio.get_running_loop().create_task(self._deliver(app, url, list(events)))
            self._retries.add(task)
            task.add_done_callback(self._retries.discard)

    async def _deliver(self, app: App, url: str, events: list[dict[str, Any]]) -> None:
        assert self._client is not None
        deadline = time.monotonic() + RETRY_FOR
        delay = FIRST_RETRY
        while True:
            body, headers = signed_body(app, events, int(time.time() * 1000))
            problem: str
            try:
                answer = await self._client.post(url, content=body, headers=headers)
                if 200 <= answer.status_code < 300:
                    self.sent += 1
                    return
                problem = f"HTTP {answer.status_code}"
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if time.monotonic() + delay > deadline:
                self.failed += 1
                log.error("webhook to %s abandoned after retries: %s", url, problem)
                return
            log.warning("webhook to %s failed (%s): retrying in %.0f s", url, problem, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)

    async def close(self, timeout: float = 2.0) -> None:
        """Deliver what is queued (bounded), then stop retrying."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (self._queue or self._retries) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for task in [self._task, *self._retries]:
            if task is not None:
                task.cancel()
        if self._client is not None:
            await self._client.aclose()
