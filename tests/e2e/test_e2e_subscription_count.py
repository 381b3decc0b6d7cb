"""Subscription counting (``OVERTONE_SUBSCRIPTION_COUNT``) with pusher-js 8 and 7: the count
events on one node and across three, the opt-in ``subscription_count`` webhook, and a
client's forged count refused."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from e2e.e2e_helpers import Json, Scenario, python_sdk
from e2e.test_e2e_cluster import assert_clean_logs, cluster_env, joined_nodes, wait_until
from support.redis_server import RedisServer
from support.servers import ServerProcess, start_server
from support.webhook_sink import WebhookSink

pytestmark = pytest.mark.e2e

COUNTING = {"OVERTONE_SUBSCRIPTION_COUNT": "true"}
SETTLE = 0.3
"""Seconds for webhook requests in flight to arrive (batches leave 0.05 s apart)."""


def hooked(sink: WebhookSink, *listed: str) -> dict[str, str]:
    """Webhooks to ``sink``; only the ``listed`` events when given."""
    env = {"OVERTONE_WEBHOOK_URL": sink.url}
    if listed:
        env["OVERTONE_WEBHOOK_EVENTS"] = ",".join(listed)
    return env


def steps(counts: Sequence[int]) -> list[int]:
    """``counts`` without repeats in a row (a newcomer hears the count at subscription and
    again when the change is announced)."""
    return [n for i, n in enumerate(counts) if i == 0 or counts[i - 1] != n]


def count_hooks(sink: WebhookSink) -> dict[str, list[int]]:
    """channel -> the counts of its ``subscription_count`` webhooks, in the order of their
    requests' ``time_ms`` (requests are sent concurrently: they may arrive out of order)."""
    with sink.lock:
        bodies = sorted((json.loads(r.body) for r in sink.requests), key=lambda b: b["time_ms"])
    found: dict[str, list[int]] = {}
    for event in (e for body in bodies for e in body["events"]):
        if event["name"] == "subscription_count":
            found.setdefault(event["channel"], []).append(event["subscription_count"])
    return found


def counted(
    server: ServerProcess,
    sink: WebhookSink,
    peers: Sequence[ServerProcess] = (),
    counting: bool = True,
) -> tuple[Json, dict[str, list[int]]]:
    """Run the scenario (``counting``: against a counting server); at its stage ``counted``,
    wait until the webhooks carry the final counts (else: the channels' ``channel_occupied``)
    and for any straggler (the same count may come earlier too); return its result and the
    webhooks' counts as of then."""
    env = None if counting else {"COUNTS": "off"}
    with Scenario(server, "subscription_count", extra_env=env, peers=peers) as scenario:
        final = scenario.wait_stage("counted")["counts"]
        if counting:
            wait_until(
                "the final counts in the webhooks",
                lambda: {c: n[-1] for c, n in count_hooks(sink).items()} == final,
                timeout=5,
            )
        else:
            wait_until(
                "channel_occupied webhooks",
                lambda: {e.get("channel") for e in sink.events()} >= set(final),
                timeout=5,
            )
        time.sleep(SETTLE)
        hooks = count_hooks(sink)
        scenario.resume("counted")
        result = scenario.finish()
    return result, hooks


def assert_signed(sink: WebhookSink, server: ServerProcess) -> None:
    """Every request carried the app key and a valid signature of its body."""
    assert sink.requests
    with python_sdk(server) as sdk:
        for request in sink.requests:
            assert request.headers["X-Pusher-Key"] == server.key
            body = sdk.validate_webhook(
                request.headers["X-Pusher-Key"], request.headers["X-Pusher-Signature"], request.body
            )
            assert body is not None and body["events"], request


def assert_counts_followed(result: Json, nodes: list[int]) -> None:
    """The two counted channels: a joined alone (1), then b and c (3), then c left (2)."""
    for name in ("news", "chat"):
        channel = result[name]
        a, b, c = channel["three"]
        assert [a["node"], b["node"], c["node"]] == nodes, channel
        for member in (a, b, c):
            # pusher-js's property and its binding agree with every frame it got.
            assert member["property"] == 3, member
            assert member["counts"] == [
                frame[1]["subscription_count"] for frame in member["frames"]
            ]
            assert {frame[0] for frame in member["frames"]} == {
                "private-chat" if name == "chat" else "news"
            }
        # Two joined together: the first saw 3 at once or 2 then 3; never anything else.
        assert steps(a["counts"]) in ([1, 3], [1, 2, 3]), a
        assert steps(b["counts"]) in ([3], [2, 3]), b
        assert steps(c["counts"]) in ([3], [2, 3]), c
        # c left: the two others saw 2, once.
        for before, after in zip((a, b), channel["two"], strict=True):
            assert after["property"] == 2, after
            assert steps(after["counts"]) == [*steps(before["counts"]), 2], after
    # The raw client joined news (3); its own count of 999 reached no one.
    for before, after in zip(result["news"]["two"], result["news"]["after_raw"], strict=True):
        assert after["property"] == 3, after
        assert steps(after["counts"]) == [*steps(before["counts"]), 3], after
    # b on news was pusher-js 7.
    libraries = [member["library"] for member in result["news"]["three"]]
    assert libraries == ["pusher-js 8", "pusher-js 7", "pusher-js 8"]
    # On the wire the data is a JSON string, as hosted Pusher sends it.
    raw = [json.loads(frame) for frame in result["raw_counts"]]
    assert raw and all(isinstance(frame["data"], str) for frame in raw), raw
    assert [json.loads(frame["data"]) for frame in raw][-1] == {"subscription_count": 3}
    assert all(frame["channel"] == "news" for frame in raw)


def assert_common(result: Json) -> None:
    """What holds whether the server counts or not."""
    # Presence channels have user_count: no subscription count there.
    for member in result["room"]:
        assert member["counts"] == [] and member["frames"] == [], member
        assert member["property"] is None
    # A client may not send pusher_internal events: an error, the connection stays.
    assert result["refusal"]["code"] is None
    assert "pusher_internal:subscription_count" in result["refusal"]["message"]
    assert set(result["states"]) == {"connected"}


def test_counts_follow_clients_on_one_node(tmp_path: Path, sink: WebhookSink) -> None:
    server = start_server(tmp_path, {**COUNTING, **hooked(sink, "subscription_count")})
    try:
        result, hooks = counted(server, sink)
    finally:
        server.stop()

    assert_counts_followed(result, [0, 0, 0])
    assert_common(result)
    # The webhook follows the count as the subscribers saw it (one node: the same
    # coalescing), for the counted channels only, and nothing else was sent.
    a_saw = {"news": result["news"]["after_raw"][0], "chat": result["chat"]["two"][0]}
    assert hooks == {
        "news": steps(a_saw["news"]["counts"]),
        "private-chat": steps(a_saw["chat"]["counts"]),
    }
    assert {event["name"] for event in sink.events()} == {"subscription_count"}
    assert_signed(sink, server)
    assert "Traceback" not in server.log(), server.log()


def test_no_counts_by_default(tmp_path: Path, sink: WebhookSink) -> None:
    # Default settings, webhooks to every (default) event: no count event, no count webhook.
    server = start_server(tmp_path, hooked(sink))
    try:
        result, hooks = counted(server, sink, counting=False)
    finally:
        server.stop()

    for name in ("news", "chat"):
        for member in [*result[name]["three"], *result[name]["two"]]:
            assert member["counts"] == [] and member["frames"] == [], member
            assert member["property"] is None, member
    assert result["raw_counts"] == []
    assert_common(result)
    assert hooks == {}
    assert {"channel_occupied", "member_added"} <= {e["name"] for e in sink.events()}


def test_counts_are_cluster_wide(
    tmp_path: Path, redis_server: RedisServer, sink: WebhookSink
) -> None:
    env = {**cluster_env(redis_server), **COUNTING, **hooked(sink, "subscription_count")}
    with joined_nodes(tmp_path, env, 3) as nodes:
        result, hooks = counted(nodes[0], sink, peers=nodes[1:])
        assert_clean_logs(nodes)

    # a, b and c on nodes 0, 1 and 2 each saw the count of the whole cluster.
    assert_counts_followed(result, [0, 1, 2])
    assert_common(result)
    assert [member["node"] for member in result["room"]] == [0, 1]
    # One node speaks for the cluster: every change once (the same count twice in a row
    # would be a second node's), from the first subscriber to the final count.
    assert set(hooks) == {"news", "private-chat"}
    for channel, counts in hooks.items():
        assert counts == steps(counts), (channel, counts)
        assert counts[0] == 1 and set(counts) <= {1, 2, 3}, (channel, counts)
    assert hooks["news"][-1] == 3 and hooks["private-chat"][-1] == 2
    assert_signed(sink, nodes[0])
