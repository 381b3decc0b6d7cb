"""The dashboard of a cluster: every node listed, figures summed, one console for all."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from overtone.cluster.memory_broker import MemoryBus
from overtone.config import load_settings
from overtone.server import Server
from support.inprocess import BASE_ENV
from support.rawws import RawClient
from support.servers import APP_ID, scaled
from transport.test_dashboard import PASSWORD, Feed, get_json


async def test_one_dashboard_sees_the_whole_cluster() -> None:
    bus = MemoryBus()
    env = {**BASE_ENV, "OVERTONE_DASHBOARD_PASSWORD": PASSWORD}
    a = Server(load_settings(env), broker_factory=bus.broker)
    b = Server(load_settings(env), broker_factory=bus.broker)
    await a.start()
    await b.start()
    try:
        client = await RawClient.connect(b.port)
        socket_id = await client.established()
        client.send_json({"event": "pusher:subscribe", "data": {"channel": "room-1"}})
        await client.recv_json()
        feed = await Feed.open(a.port)  # the dashboard is open on node a only
        # Within a second node b hears that the cluster is watched and starts tracing;
        # from then on the console of node a shows what happens on node b.
        for _ in range(int(scaled(10) / 0.05)):
            if all(h.trace is not None for h in b.node.hubs()):
                break
            await asyncio.sleep(0.05)
        client.send_json({"event": "pusher:subscribe", "data": {"channel": "room-2"}})
        seen = await feed.until(lambda e: e["kind"] == "subscribed" and e["channel"] == "room-2")
        entry = next(e for e in seen if e["channel"] == "room-2")
        assert entry["node"] == b.node_id and entry["socket_id"] == socket_id
        overview: dict[str, Any] = {}
        for _ in range(int(scaled(10) / 0.2)):
            overview = await get_json(a.port, "/dashboard/api/overview")
            nodes = {n["id"]: n for n in overview["nodes"]}
            if nodes.get(b.node_id, {}).get("cpu") is not None:
                break
            await asyncio.sleep(0.2)
        nodes = {n["id"]: n for n in overview["nodes"]}
        assert set(nodes) == {a.node_id, b.node_id}
        assert nodes[a.node_id]["self"] and not nodes[b.node_id]["self"]
        assert nodes[b.node_id]["connections"] == 1 and nodes[b.node_id]["state"] == "up"
        assert nodes[b.node_id]["rss"] > 0
        [app] = overview["apps"]
        assert app["id"] == APP_ID
        assert (app["connections"], app["local_connections"], app["channels"]) == (1, 0, 2)
        assert overview["cluster"] is True
        feed.close()
        client.close()
        # Once nobody watches, node b stops tracing.
        for _ in range(int(scaled(10) / 0.2)):
            if all(h.trace is None for h in b.node.hubs()):
                break
            await asyncio.sleep(0.2)
        assert all(h.trace is None for h in b.node.hubs())
    finally:
        await a.shutdown()
        await b.shutdown()
    assert json.dumps(overview)  # the document is plain JSON
