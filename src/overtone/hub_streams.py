"""The hub's side of channel history and recovery (protocol.md §8). Sans-I/O.

:class:`HubStreams` adds to the hub's state what subscriptions and publications need from a
channel's stream (:mod:`overtone.channels.history`): the position and missed events a
subscription is answered with, the replay (skipping what the client's previous connection
was excluded from), and in a cluster, delivering events the broker numbered and waiting for
a stream this node does not follow yet (``load_stream`` / ``stream_loaded``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from overtone.channels.channel import Channel
from overtone.channels.history import Position, parse_position, with_offset
from overtone.hub_state import HubState
from overtone.protocol import messages
from overtone.protocol.channel_names import classify
from overtone.protocol.frames import encode_frame
from overtone.session import Session


@dataclass(frozen=True, slots=True)
class CatchUp:
    """Why a subscribed session waits for a stream: this node may have missed events of it
    after ``since`` (``None``: the stream restarted, nothing can be caught up)."""

    since: Position | None


class HubStreams(HubState):
    """Delivery and the stream side of subscriptions."""

    def deliver(self, name: str, payload: bytes, exclude: str | None, now: float) -> None:
        """Deliver an encoded event to this node's subscribers of ``name``; cache it."""
        channel = self.channels.get(name)
        if (channel.kind if channel is not None else classify(name)).cache:
            self.cache.put(name, payload, now)
        if channel is not None:
            self._fan_out(channel, encode_frame(payload), exclude)

    def deliver_sequenced(
        self, name: str, payload: bytes, epoch: str, offset: int, exclude: str | None, now: float
    ) -> None:
        """Deliver and store an event the cluster's broker gave position ``(epoch, offset)``."""
        stored = with_offset(payload, offset)
        history = self.history
        if history is None or history.record(name, epoch, offset, stored, now, exclude):
            self.deliver(name, stored, exclude, now)
        # else: already part of a snapshot this node merged, and replayed from there

    def _stream_start(
        self, name: str, recover: object, now: float
    ) -> tuple[list[bytes] | None, bool | None, dict[str, object] | None]:
        """``(missed events, recovered, position)`` for a subscription taking effect now.

        Without ``recover`` only the position is given (``recovered`` is ``None``); with it,
        the events after the client's position, or ``None`` and ``recovered=False`` when the
        history no longer holds all of them (or the app keeps none). In a cluster a stream
        this node does not follow (the shared store was unreachable) has no position.
        """
        history = self.history
        missed: list[bytes] | None = None
        if history is not None and recover is not None:
            wanted = parse_position(recover)
            if wanted is not None:
                missed = history.since(name, wanted, now)
        recovered = None if recover is None else missed is not None
        if history is None or (self.load_stream is not None and name not in history.streams):
            return None, recovered, None
        return missed, recovered, history.position(name, now).to_wire()

    def _replay(
        self, session: Session, name: str, missed: list[bytes] | None, recover: object
    ) -> None:
        """Count a recovery attempt and send the missed events (``None``: none can be)."""
        if missed is None:
            self.stats.resynced += 1
            return
        self.stats.recovered += 1
        skip = self._excluded_before(name, recover)
        wanted = parse_position(recover)
        first = wanted.offset + 1 if wanted is not None else 0
        frames = [
            # Its own app's toOthers() event was not sent to it live: not replayed either.
            encode_frame(messages.skipped(name, offset) if offset in skip else event)
            for offset, event in enumerate(missed, first)
        ]
        if frames:  # one write for the whole replay (a reconnect storm replays a lot)
            joined = b"".join(frames)
            session.write(joined)
            self.stats.messages_out += len(frames)
            self.stats.bytes_out += len(joined)

    def _excluded_before(self, name: str, recover: object) -> set[int]:
        """Offsets that were not sent to the recovering client's previous connection."""
        previous = recover.get("socket_id") if isinstance(recover, dict) else None
        if not isinstance(previous, str) or self.history is None:
            return set()
        return self.history.excluded_for(name, previous)

    def _must_load(self, name: str, recover: object, now: float) -> bool:
        """In a cluster, whether this subscription must wait for the shared stream: this
        node does not follow the stream yet, or does not hold what ``recover`` asks for."""
        history = self.history
        if history is None or self.load_stream is None:
            return False
        if self._reading(name) or name not in history.streams:
            return True
        wanted = parse_position(recover) if recover is not None else None
        return wanted is not None and history.since(name, wanted, now) is None

    def catch_up(self, name: str, since: Position | None) -> None:
        """Bring this node's subscribers of ``name`` up to date after it may have missed
        events (a broker outage; ``since=None``: the stream restarted in a new epoch).

        The stream is read again from the cluster's store; meanwhile the subscribers are
        withheld from live events. Then each gets the events after ``since`` when the store
        still holds them all in that epoch, or else an unsolicited
        ``subscription_succeeded`` with ``recovered: false`` and the current position: it
        must reload that channel's state. Never a silent gap (protocol.md §8).
        """
        if since is None and self._reading(name):
            self.stale_reads.add(name)  # what is on its way may predate the restart
        channel = self.channels.get(name)
        if channel is None or self.load_stream is None:
            return
        pending = channel.pending or set()
        waiting = [s for sid, s in channel.subscribers.items() if sid not in pending]
        if not waiting:
            return
        channel.pending = pending | {session.socket_id for session in waiting}
        reading = self._reading(name)
        self.loading.setdefault(name, []).extend((session, CatchUp(since)) for session in waiting)
        if not reading:  # after registering: a store may answer at once
            self.load_stream(name)

    def _caught_up(
        self, session: Session, channel: Channel[Session], since: Position | None, now: float
    ) -> None:
        """Answer one session that waited for :meth:`catch_up`."""
        name, history = channel.name, self.history
        if history is not None and since is not None and name in history.streams:
            missed = history.since(name, since, now)
            if missed is not None:  # the events it missed, as they would have come live
                recover = {"socket_id": session.socket_id, **since.to_wire()}
                self._replay(session, name, missed, recover)
                return
        payload = b"{}"
        if channel.roster is not None:
            payload = messages.encode({"presence": self.presence_snapshot(name)}) or payload
        position = None
        if history is not None and name in history.streams:
            position = history.position(name, now).to_wire()
        frame = messages.subscription_succeeded(name, payload.decode(), position, False)
        self._send(session, frame)
        self.stats.resynced += 1

    def when_loaded(self, name: str, callback: Callable[[], None]) -> None:
        """Call ``callback`` once stream ``name`` has been read from the cluster's store."""
        assert self.load_stream is not None
        reading = self._reading(name)
        self.loaded_callbacks.setdefault(name, []).append(callback)
        if not reading:  # after registering: a store may answer at once
            self.load_stream(name)

    def _reading(self, name: str) -> bool:
        """Whether stream ``name`` is being read from the cluster's store already."""
        return name in self.loading or name in self.loaded_callbacks
