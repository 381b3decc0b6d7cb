"""One node's membership in a cluster: envelopes, heartbeats, joining, dead nodes. Pure.

All nodes publish to, and read from, one broker channel. An envelope is
``{"n": node_id, "m": [[app_id, message], ...]}``; messages for the whole node use the app
id ``""``:

- ``hello`` (a node joined or its broker reconnected) carries the node's whole state
  (``s``: shares per app, ``k``: cache entries per app); every other node answers ``sync``
  with its own state, so the newcomer learns the cluster.
- ``hb``: heartbeat. A node not heard from for ``node_timeout`` seconds is dead: its
  connections disappear from every count and its presence members are removed, with the
  ``member_removed`` and watchlist ``offline`` events that implies.
- ``bye``: a node shutting down cleanly; it is forgotten at once.
- ``restart`` (sent by ``overtone restart``): every node drains and exits, one after the
  other (rank among live nodes times ``OVERTONE_RESTART_STAGGER`` seconds), for its process
  manager to start it again.
- ``load``: a node's figures and debug-console entries, sent once a second only while a
  dashboard is open somewhere in the cluster (see :mod:`overtone.dashboard.service`).

A node also reads its own envelopes back: they tell it where its own changes sit in the
broker's order, which decides the webhooks that must be sent once cluster-wide.

Outgoing messages are queued and sent in one envelope per :meth:`Coordinator.flush`; the
transport calls ``flush`` soon after ``wake`` fires, so a burst costs one broker message.

Counts cost per change of shared state, not per connection: connection and subscription
changes are not queued one by one but added up per app and per channel until the flush (one
``conn`` with the net change, one ``subs`` with every channel's net change, and for a channel
whose count went down and up again within the batch, the lowest and highest points, so
``channel_occupied``/``channel_vacated`` are still decided exactly). They go first in the
envelope. ``wake(urgent=False)`` lets the transport wait up to
:data:`COUNT_WINDOW` seconds before flushing mere counts, so a connection storm costs a few
broker messages a second; anything else (events, presence, sign-ins) wakes it at once.

History (protocol.md §8): events on channels with history are marked ``"n": 1`` and handed
to the broker as *appends*; the broker numbers them and they come back to every node, the
publisher included, as ``{"q": [[epoch, offset], ...], "e": envelope}``, so every node
stores and delivers the same offsets. After an outage a node forgets the streams it
followed (it may have missed events) and has the streams it published to while the broker
was away restarted in a new epoch (``hreset``): recovering clients are told
``recovered: false`` rather than given a history with a hole.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from overtone.channels.replica import Share
from overtone.cluster.broker import StreamAppend, StreamRef
from overtone.cluster.sync import apply, apply_own, local_share, replace_share
from overtone.hub import Hub
from overtone.node import Node

log = logging.getLogger("overtone.cluster")

COUNT_WINDOW = 0.01
"""Seconds the transport may wait before flushing a batch that holds only counts."""


@dataclass(slots=True)
class Counts:
    """One app's connection and subscription changes since the last flush."""

    connections: int = 0
    authorized: int = 0
    """Change of authorized connections (apps that require authorization)."""
    channels: dict[str, list[int]] = field(default_factory=dict)
    """channel -> ``[net, lowest, highest]`` running totals since the batch began."""

    def subscribe(self, channel: str, delta: int) -> None:
        running = self.channels.get(channel)
        if running is None:
            self.channels[channel] = [delta, min(delta, 0), max(delta, 0)]
            return
        net = running[0] = running[0] + delta
        if net < running[1]:
            running[1] = net
        elif net > running[2]:
            running[2] = net

    def messages(self, occupancy: bool) -> list[dict[str, Any]]:
        """``conn`` and ``subs`` messages for the batch (nothing for what did not change).

        ``occupancy``: the app wants ``channel_occupied``/``channel_vacated`` webhooks, so a
        channel that went down and up within the batch is sent even with no net change.
        """
        out: list[dict[str, Any]] = []
        if self.connections:
            out.append({"t": "conn", "d": self.connections})
        if self.authorized:
            out.append({"t": "auth", "d": self.authorized})
        changed: dict[str, Any] = {}
        for channel, (net, low, high) in self.channels.items():
            if low == min(net, 0) and high == max(net, 0):
                if net:
                    changed[channel] = net  # went one way only: the net change says it all
            elif occupancy:
                changed[channel] = [net, low, high]
            elif net:
                changed[channel] = net
        if changed:
            out.append({"t": "subs", "c": changed})
        return out


@dataclass(slots=True)
class Outgoing:
    """What :meth:`Coordinator.flush` hands the broker: one envelope, the events in it the
    broker must number (in order), and the streams it must restart first."""

    envelope: bytes
    appends: list[StreamAppend] = field(default_factory=list)
    resets: list[StreamRef] = field(default_factory=list)


class Coordinator:
    """Connects a :class:`Node`'s hubs to the other nodes through a broker."""

    def __init__(
        self,
        node: Node,
        node_id: str,
        wake: Callable[[bool], None],
        heartbeat: float = 5.0,
        node_timeout: float = 15.0,
    ) -> None:
        self.node = node
        self.node_id = node_id
        self.heartbeat = heartbeat
        self.node_timeout = node_timeout
        self._wake = wake
        self._pending: list[list[Any]] = []
        self._counts: dict[str, Counts] = {}
        self._resets: list[StreamRef] = []
        self._last_heartbeat = float("-inf")
        self.last_seen: dict[str, float] = {}
        self.synced: set[str] = set()
        """Nodes whose whole state (``hello`` or ``sync``) this node has received."""
        self._asked: set[str] = set()
        self.hubs: dict[str, Hub] = {}
        self.on_restart: Callable[[int], None] | None = None
        """Called with this node's rank among live nodes when a restart is requested."""
        self.on_load: Callable[[str, dict[str, Any], float], None] | None = None
        """Called with ``(sender, message, now)`` for each other node's ``load`` report."""
        self.on_fallback: Callable[[str, dict[str, Any]], None] | None = None
        """Called with ``(sender, message)`` for each other node's HTTP fallback message."""
        self.on_node: Callable[[str, bool], None] | None = None
        """Called with ``(node, joined)`` when a node says hello (``True``) or is gone."""
        self.leader = True
        """Whether this node has the smallest id among the live nodes it knows: it sends
        the webhooks one node sends for the whole cluster (``subscription_count``)."""
        for app in node.registry:
            hub = node.hub(app)
            self.hubs[app.id] = hub
            hub.emit = self._emitter(app.id)

    def _emitter(self, app_id: str) -> Callable[[dict[str, Any]], None]:
        def emit(message: dict[str, Any]) -> None:
            kind = message["t"]
            if kind == "sub":
                self._count(app_id).subscribe(message["c"], message["d"])
            elif kind == "conn":
                self._count(app_id).connections += message["d"]
            elif kind == "auth":
                self._count(app_id).authorized += message["d"]
            else:
                self._queue(app_id, message)

        return emit

    def _occupancy(self, app_id: str) -> bool:
        hub = self.hubs.get(app_id)
        return hub is not None and (
            hub.app.wants_webhook("channel_occupied") or hub.app.wants_webhook("channel_vacated")
        )

    def _count(self, app_id: str) -> Counts:
        counts = self._counts.get(app_id)
        if counts is None:
            counts = self._counts[app_id] = Counts()
            if not self._pending:
                self._wake(False)
        return counts

    def _queue(self, app_id: str, message: dict[str, Any], urgent: bool = True) -> None:
        if not self._pending or urgent:
            self._wake(urgent)
        self._pending.append([app_id, message])

    def flush(self) -> Outgoing | None:
        """Everything queued since the last flush (counts first), or ``None``."""
        if not self._pending and not self._counts:
            return None
        pending: list[list[Any]] = [
            [app_id, message]
            for app_id, counts in self._counts.items()
            for message in counts.messages(self._occupancy(app_id))
        ]
        pending += self._pending
        self._pending, self._counts = [], {}
        if not pending:
            return None
        outgoing = Outgoing(orjson.dumps({"n": self.node_id, "m": pending}))
        outgoing.resets, self._resets = self._resets, []
        for app_id, message in pending:
            if message.get("n"):
                limits = self.hubs[app_id].app.history
                exclude = message.get("x")
                outgoing.appends.append(
                    StreamAppend(
                        app_id,
                        message["c"],
                        message["p"].encode(),
                        limits.max_events,
                        limits.ttl,
                        exclude if isinstance(exclude, str) else None,
                    )
                )
        return outgoing

    # -- membership ----------------------------------------------------------------------

    def state(self, now: float) -> dict[str, Any]:
        """This node's whole state, for ``hello``/``sync``."""
        return {
            "s": {app_id: local_share(hub).to_wire() for app_id, hub in self.hubs.items()},
            "k": {app_id: hub.cache.export(now) for app_id, hub in self.hubs.items()},
        }

    def connected(self, now: float) -> None:
        """The broker is (again) reachable: announce our whole state.

        Streams followed so far may have missed events while the broker was away: they are
        read again from the broker's store, and their local subscribers get what they missed
        or are told to reload (:meth:`~overtone.hub.Hub.catch_up`). Streams that had events
        delivered here without an offset restart in a new epoch everywhere.
        """
        self._announce(now)
        for app_id, hub in self.hubs.items():
            if hub.history is not None:
                followed = [
                    (stream.name, stream.position())
                    for stream in hub.history
                    if stream.name in hub.channels
                ]
                hub.history.clear()
                for name, since in followed:  # its subscribers may have missed events
                    hub.catch_up(name, since)
            if hub.unsequenced:
                channels = sorted(hub.unsequenced)
                hub.unsequenced.clear()
                self._resets += [(app_id, channel) for channel in channels]
                self._queue(app_id, {"t": "hreset", "c": channels})

    def _announce(self, now: float) -> None:
        self._queue("", {"t": "hello", **self.state(now)})

    def send_load(self, report: dict[str, Any]) -> None:
        """Queue this node's ``load`` report (the dashboard's figures and console)."""
        self._queue("", {**report, "t": "load"}, urgent=False)

    def send_fallback(self, message: dict[str, Any]) -> None:
        """Queue a message of the HTTP fallback's cluster side (sent at the next iteration)."""
        self._queue("", {**message, "t": "fb"})

    def leave(self) -> None:
        """Queue a ``bye`` (clean shutdown)."""
        self._queue("", {"t": "bye"})

    def tick(self, now: float) -> None:
        """Send a heartbeat when due and forget nodes silent for ``node_timeout``."""
        if now - self._last_heartbeat >= self.heartbeat:
            self._last_heartbeat = now
            self._queue("", {"t": "hb"}, urgent=False)
        for node, seen in list(self.last_seen.items()):
            if now - seen > self.node_timeout:
                log.warning("node %s silent for %.0f s: removing its connections", node, now - seen)
                self._forget(node)

    def _forget(self, node: str) -> None:
        if self.on_node is not None and node in self.last_seen:
            self.on_node(node, False)
        self.last_seen.pop(node, None)
        self.synced.discard(node)
        self._asked.discard(node)
        self._elect()
        # The surviving node with the smallest id speaks for the one that is gone.
        responsible = self.leader
        for hub in self.hubs.values():
            replace_share(hub, node, None, responsible=responsible)

    def _elect(self) -> None:
        """Decide, after the set of live nodes changed, whether this node is the leader."""
        leader = self.node_id <= min(self.last_seen, default=self.node_id)
        if leader != self.leader:
            self.leader = leader
            for hub in self.hubs.values():
                hub.speaks_for_cluster = leader

    # -- incoming ------------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> None:
        """Handle what the broker delivered: one envelope, or a JSON array of envelopes."""
        try:
            decoded = orjson.loads(data)
        except orjson.JSONDecodeError:
            log.warning("ignoring a malformed cluster message")
            return
        positions: Iterator[Any] = iter(())
        if isinstance(decoded, dict) and "q" in decoded:
            positions = iter(decoded["q"] if isinstance(decoded["q"], list) else ())
            decoded = decoded.get("e")
        for envelope in decoded if isinstance(decoded, list) else [decoded]:
            self._envelope(envelope, positions, now)

    def _sequenced(
        self, app_id: object, message: dict[str, Any], positions: Iterator[Any], now: float
    ) -> None:
        """Deliver an event the broker numbered (``positions`` gives its position)."""
        position = next(positions, None)
        hub = self.hubs.get(str(app_id))
        try:
            epoch, offset = position  # type: ignore[misc]
            exclude = message.get("x")
            if hub is not None:
                hub.deliver_sequenced(
                    str(message["c"]),
                    str(message["p"]).encode(),
                    str(epoch),
                    int(offset),
                    exclude if isinstance(exclude, str) else None,
                    now,
                )
        except (KeyError, TypeError, ValueError):
            log.warning("ignoring a malformed numbered event")

    def _envelope(self, envelope: object, positions: Iterator[Any], now: float) -> None:
        try:
            assert isinstance(envelope, dict)
            sender = envelope["n"]
            messages = envelope["m"]
        except (AssertionError, KeyError, TypeError):
            log.warning("ignoring a malformed cluster message")
            return
        if not isinstance(messages, list):
            return
        if sender == self.node_id:
            self._own(messages, positions, now)
            return
        sender = str(sender)
        known = sender in self.last_seen
        self.last_seen[sender] = now
        if not known:
            self._elect()
        introduced = False
        for item in messages:
            if not isinstance(item, list) or len(item) != 2 or not isinstance(item[1], dict):
                continue
            app_id, message = item
            if message.get("n"):
                self._sequenced(app_id, message, positions, now)
            elif app_id == "":
                introduced |= self._node_message(sender, message, now)
            else:
                hub = self.hubs.get(str(app_id))
                if hub is not None:
                    apply(hub, sender, message, now)
        if not known and not introduced and sender not in self._asked:
            self._asked.add(sender)  # we missed its hello: ask everyone for their state
            self._announce(now)

    def _own(self, messages: list[Any], positions: Iterator[Any], now: float) -> None:
        """Our own envelope, back from the broker: replay it in the broker's order."""
        for item in messages:
            if not isinstance(item, list) or len(item) != 2 or not isinstance(item[1], dict):
                continue
            app_id, message = item
            if message.get("n"):
                self._sequenced(app_id, message, positions, now)
            elif app_id == "":
                if message.get("t") == "hello" and isinstance(message.get("s"), dict):
                    for hub_id, each in self.hubs.items():
                        each.ordered.reset(Share.from_wire(message["s"].get(hub_id)))
            else:
                hub = self.hubs.get(str(app_id))
                if hub is not None:
                    apply_own(hub, message)

    def _node_message(self, sender: str, message: dict[str, Any], now: float) -> bool:
        kind = message.get("t")
        if kind in ("hello", "sync"):
            shares = message.get("s")
            caches = message.get("k")
            for app_id, hub in self.hubs.items():
                wire = shares.get(app_id) if isinstance(shares, dict) else None
                replace_share(hub, sender, Share.from_wire(wire))
                if isinstance(caches, dict):
                    hub.cache.merge(caches.get(app_id), now)
            self.synced.add(sender)
            if kind == "hello":
                log.info("node %s joined", sender)
                self._queue("", {"t": "sync", **self.state(now)})
                if self.on_node is not None:
                    self.on_node(sender, True)
            return True
        if kind == "bye":
            log.info("node %s left", sender)
            self._forget(sender)
        elif kind == "load" and self.on_load is not None:
            self.on_load(sender, message, now)
        elif kind == "fb" and self.on_fallback is not None:
            self.on_fallback(sender, message)
        elif kind == "restart" and self.on_restart is not None:
            rank = sorted([*self.last_seen, self.node_id]).index(self.node_id)
            self.on_restart(rank)
        return False
