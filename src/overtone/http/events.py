"""Validating trigger bodies (``/events`` and ``/batch_events``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

from overtone.apps import App
from overtone.protocol.channel_names import event_name_error, name_error

_SOCKET_ID = re.compile(r"\d+\.\d+")


class BadRequest(Exception):
    """A request the API refuses; ``status`` and a message saying what is wrong."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)  # not frozen: made per event, and a frozen __init__ is twice as slow
class Trigger:
    """One validated event to publish."""

    name: str
    channels: tuple[str, ...]
    data: str
    socket_id: str | None
    info: tuple[str, ...]


def parse_json(body: bytes) -> object:
    """The JSON document in ``body``, or :class:`BadRequest` 400."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(400, f"Request body is not valid JSON: {exc}") from None


def parse_trigger(app: App, item: object, where: str = "") -> Trigger:
    """Validate one event object (protocol.md §5 limits)."""
    if not isinstance(item, dict):
        raise BadRequest(400, f"{where}event must be a JSON object")
    name = item.get("name")
    problem = event_name_error(name)
    if problem is not None:
        raise BadRequest(400, f"{where}{problem}")
    assert isinstance(name, str)
    if "channels" in item:
        channels = item["channels"]
        if not isinstance(channels, list) or not channels:
            raise BadRequest(400, f"{where}channels must be a non-empty list of channel names")
    elif "channel" in item:
        channels = [item["channel"]]
    else:
        raise BadRequest(400, f"{where}channel or channels is required")
    if len(channels) > app.max_channels_per_trigger:
        raise BadRequest(
            400, f"{where}an event may go to at most {app.max_channels_per_trigger} channels"
        )
    for channel in channels:
        problem = name_error(channel)
        if problem is not None:
            raise BadRequest(400, f"{where}{problem}: {str(channel)[:200]!r}")
    data = item.get("data", "")
    if not isinstance(data, str):
        data = orjson.dumps(data).decode()
    # A character is at most 4 bytes in UTF-8: only a long string needs encoding to measure.
    if len(data) * 4 > app.max_message_size and len(data.encode()) > app.max_message_size:
        raise BadRequest(
            413, f"{where}data is larger than the {app.max_message_size} bytes allowed"
        )
    socket_id = item.get("socket_id")
    if socket_id is not None and (
        not isinstance(socket_id, str) or not _SOCKET_ID.fullmatch(socket_id)
    ):
        raise BadRequest(400, f"{where}socket_id must look like 1234.5678")
    info = item.get("info", "")
    if not isinstance(info, str):
        raise BadRequest(400, f"{where}info must be a comma-separated string")
    unique = tuple(channels) if len(channels) == 1 else tuple(dict.fromkeys(channels))
    return Trigger(
        name, unique, data, socket_id, tuple(filter(None, info.split(","))) if info else ()
    )
