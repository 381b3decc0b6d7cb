"""``GET /apps/{id}/channels/{C}/history``: server-side catch-up (protocol.md §8).

The answer is ``{"position", "complete", "events": [{"offset", "event", "data"}]}``:
``events`` are the held events after ``since`` (oldest first, at most ``limit``);
``complete`` is true when none is missing between ``since`` and the first one returned, in
the epoch the caller named (or the current one when it named none). A caller that gets
``complete: false`` must reload its state from its own database; one that gets ``limit``
events asks again with ``since`` set to the last offset returned.
"""

from __future__ import annotations

from typing import Any

from overtone.channels.history import History, event_fields

MAX_HISTORY_LIMIT = 1_000
"""Most events one history request returns."""


def history_page(
    history: History, channel: str, epoch: str | None, since: int, limit: int, now: float
) -> dict[str, Any]:
    """The JSON document answering one history request."""
    position = history.position(channel, now)
    held = history.held(channel, now)
    same_epoch = epoch is None or epoch == position.epoch
    if not same_epoch or since > position.offset:
        # Another epoch (or an offset this stream never reached): everything held is new.
        events = held[:limit]
        complete = False
    else:
        events = [(offset, payload) for offset, payload in held if offset > since][:limit]
        first = events[0][0] if events else position.offset + 1
        complete = first == since + 1 or since == position.offset
    return {
        "position": position.to_wire(),
        "complete": complete,
        "events": [event_fields(payload) for _, payload in events],
    }
