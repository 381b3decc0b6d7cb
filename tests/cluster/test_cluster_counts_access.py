"""Subscription counts and authorized connections across nodes (in-process bus)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from overtone.cluster.coordinator import Coordinator
from support.cluster import APP, Bus, client_on, hub_of
from support.fakes import FakeClient

COUNTING = replace(APP, subscription_count=True)
COUNT = "pusher_internal:subscription_count"


def counts_in(messages: list[dict[str, Any]]) -> list[int]:
    return [json.loads(m["data"])["subscription_count"] for m in messages if m["event"] == COUNT]


def flush_all(nodes: list[Coordinator], now: float) -> None:
    """What each node's count clock does when due."""
    for node in nodes:
        hub_of(node).flush_counts(now)


def test_every_subscriber_sees_the_cluster_wide_count() -> None:
    bus = Bus()
    nodes = [bus.add(name, COUNTING) for name in "abc"]
    clients = []
    seen: list[list[int]] = []
    for i, node in enumerate(nodes):
        client = client_on(bus, node)
        client.subscribe("news")
        bus.pump()
        clients.append(client)
        seen.append(counts_in(client.take()))
        assert seen[-1] == [i + 1]  # the newcomer learns it at once
        flush_all(nodes, float(i))
        for earlier, got in zip(clients, seen, strict=True):
            got.extend(counts_in(earlier.take()))
    # Each saw every count once: the newcomer's own frame is its node's announcement.
    assert seen == [[1, 2, 3], [2, 3], [3]]
    clients[2].disconnect()
    bus.pump()
    flush_all(nodes, 10.0)
    assert [counts_in(c.take()) for c in clients[:2]] == [[2], [2]]
    assert counts_in(clients[2].take()) == []


def test_a_dead_nodes_subscribers_leave_the_count() -> None:
    bus = Bus()
    a, b = bus.add("a", COUNTING), bus.add("b", COUNTING)
    x = client_on(bus, a)
    x.subscribe("news")
    for _ in range(3):
        client_on(bus, b).subscribe("news")
    bus.pump()
    flush_all([a, b], 0.1)  # an interval after x's own count
    assert counts_in(x.take()) == [1, 4]
    bus.kill(b)
    for _ in range(5):
        bus.advance(5)
    flush_all([a], bus.now)
    assert counts_in(x.take())[-1] == 1


def test_the_count_webhook_is_sent_by_one_node() -> None:
    bus = Bus()
    app = replace(
        APP,
        webhook_urls=("http://127.0.0.1:1/hooks",),
        webhook_events=frozenset({"subscription_count"}),
    )
    nodes = [bus.add(name, app) for name in "cba"]  # "a" joins last, and leads
    sent: list[tuple[str, dict[str, Any]]] = []
    for node in nodes:
        hub_of(node).webhook = lambda event, name=node.node_id: sent.append((name, event))
    assert [hub_of(node).speaks_for_cluster for node in nodes] == [False, False, True]
    for node in nodes:
        client_on(bus, node).subscribe("news")
        bus.pump()
    flush_all(nodes, 0.0)
    assert sent == [
        ("a", {"name": "subscription_count", "channel": "news", "subscription_count": 3})
    ]
    bus.kill(nodes[2])  # the leader dies: the next smallest id takes over
    for _ in range(5):
        bus.advance(5)
    assert hub_of(nodes[1]).speaks_for_cluster  # "b"
    flush_all(nodes[:2], bus.now)
    assert sent[-1] == (
        "b",
        {"name": "subscription_count", "channel": "news", "subscription_count": 2},
    )


def test_only_authorized_connections_fill_the_cluster_wide_quota() -> None:
    bus = Bus()
    app = replace(APP, authorized_connections=True, authorization_timeout=30, max_connections=2)
    a, b = bus.add("a", app), bus.add("b", app)
    x, y = client_on(bus, a), client_on(bus, b)
    anonymous = client_on(bus, b)
    x.subscribe("private-x")
    y.subscribe("private-y")
    bus.pump()
    assert hub_of(a).authorized_count() == 2 == hub_of(b).authorized_count()
    refused = FakeClient(hub_of(a)).connect()
    assert refused.closed_with is not None and refused.closed_with[0] == 4004
    anonymous.take()
    anonymous.subscribe("private-z")
    assert anonymous.closed_with is not None and anonymous.closed_with[0] == 4004
    y.disconnect()
    bus.pump()
    assert hub_of(a).authorized_count() == 1
    late = client_on(bus, a)  # a late node learns the count from its peers' state
    c = bus.add("c", app)
    assert hub_of(c).authorized_count() == 1
    for _ in range(6):  # heartbeats keep every node alive
        bus.advance(5)
    hub_of(a).tick(bus.now)  # the unauthorized one is closed at its deadline, the others stay
    assert late.closed_with is not None and late.closed_with[0] == 4009
    assert x.closed_with is None
