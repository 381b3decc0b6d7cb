"""A fake transport for driving the sans-I/O core with plain calls."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from overtone.hub import Hub
from overtone.protocol.signatures import sign
from overtone.session import Session


def payload_of(frame: bytes) -> bytes:
    """The payload of one unmasked server frame (checked to be a single FIN text frame)."""
    [payload] = payloads_of(frame)
    return payload


def payloads_of(data: bytes) -> list[bytes]:
    """The payloads of the unmasked server frames written together in ``data``, each checked
    to be a complete FIN text frame (a recovery replay writes several at once)."""
    found = []
    while data:
        assert data[0] == 0x81, f"not a FIN text frame: {data[:2]!r}"
        length = data[1] & 0x7F
        offset = 2 if length < 126 else 4 if length == 126 else 10
        if length == 126:
            length = int.from_bytes(data[2:4], "big")
        elif length == 127:
            length = int.from_bytes(data[2:10], "big")
        assert len(data) >= offset + length, "truncated frame"
        found.append(data[offset : offset + length])
        data = data[offset + length :]
    return found


@dataclass
class FakeClient:
    """One connection: records every message the hub sends and the close, if any."""

    hub: Hub
    origin: str | None = None
    now: float = 0.0
    sent: list[dict[str, Any]] = field(default_factory=list)
    closed_with: tuple[int, str] | None = None
    session: Session | None = None

    def connect(self) -> FakeClient:
        self.session = self.hub.connect(self._write, self._close, self.origin, self.now)
        return self

    def _write(self, data: bytes) -> None:
        """One frame, or several written together (a recovery replay): each is recorded."""
        self.sent.extend(json.loads(payload) for payload in payloads_of(data))

    def _close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)

    @property
    def socket_id(self) -> str:
        assert self.session is not None
        return self.session.socket_id

    def send(self, message: dict[str, Any] | str, now: float | None = None) -> None:
        assert self.session is not None
        text = message if isinstance(message, str) else json.dumps(message)
        self.hub.receive(self.session, text, self.now if now is None else now)

    def take(self) -> list[dict[str, Any]]:
        """Messages received since the last call."""
        out, self.sent = self.sent, []
        return out

    def events(self) -> list[str]:
        return [m["event"] for m in self.take()]

    def subscribe(self, channel: str, user: dict[str, Any] | None = None, **extra: Any) -> None:
        data: dict[str, Any] = {"channel": channel}
        if channel.startswith(("private-", "presence-")):
            channel_data = json.dumps(user) if user is not None else None
            data["auth"] = auth_for(self.hub, self.socket_id, channel, channel_data)
            if channel_data is not None:
                data["channel_data"] = channel_data
        data.update(extra)
        self.send({"event": "pusher:subscribe", "data": data})

    def disconnect(self) -> None:
        assert self.session is not None
        self.hub.disconnect(self.session)


def auth_for(hub: Hub, socket_id: str, channel: str, channel_data: str | None = None) -> str:
    """The ``auth`` an app's auth endpoint would return."""
    return auth_for_secret(hub.app.key, hub.app.secret, socket_id, channel, channel_data)


def auth_for_secret(
    key: str, secret: str, socket_id: str, channel: str, channel_data: str | None = None
) -> str:
    """The ``auth`` for a channel subscription, signed with ``secret``."""
    message = f"{socket_id}:{channel}" + (f":{channel_data}" if channel_data else "")
    return f"{key}:{sign(secret, message)}"


def signin_data(hub: Hub, socket_id: str, user_data: dict[str, Any]) -> dict[str, str]:
    """A signed ``pusher:signin`` data object."""
    text = json.dumps(user_data)
    return {
        "user_data": text,
        "auth": f"{hub.app.key}:{sign(hub.app.secret, f'{socket_id}::user::{text}')}",
    }
