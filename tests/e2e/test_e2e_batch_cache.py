"""Scenario 6: batch triggers, channel info through both SDKs, and cache channels."""

from __future__ import annotations

import pytest

from e2e.e2e_helpers import Scenario, python_sdk, run_scenario
from support.servers import ServerProcess

pytestmark = pytest.mark.e2e


def test_batch_triggers_and_channel_info(server: ServerProcess) -> None:
    with python_sdk(server) as sdk, Scenario(server, "batch") as run:
        run.wait_stage("python")
        py_batch = sdk.trigger_batch(
            [
                {"channel": "batch-c", "name": "py-first", "data": {"n": 6}},
                {"channel": "batch-a", "name": "py-second", "data": "seven"},
                {"channel": "batch-b", "name": "py-third", "data": {"n": 8}},
            ]
        )
        py_channel = sdk.channel_info("batch-a", ["subscription_count"])
        py_list = sdk.channels_info("batch-", ["subscription_count"])
        run.resume("python")
        result = run.finish()

    # Every event of both batches arrived, in the order of the batches, on the right channel.
    assert [(item["channel"], item["event"], item["data"]) for item in result["events"]] == [
        ("batch-a", "first", {"n": 1}),
        ("batch-b", "second", {"n": 2}),
        ("batch-a", "third", {"n": 3}),
        ("batch-c", "fourth", "four"),
        ("batch-a", "with-info", {"n": 5}),
        ("batch-b", "with-info", {"n": 5}),
        ("batch-c", "py-first", {"n": 6}),
        ("batch-a", "py-second", "seven"),
        ("batch-b", "py-third", {"n": 8}),
    ]
    assert result["batch_status"] == 200
    # info=subscription_count per batch item: batch-a has two subscribers, the others one.
    assert result["batch_body"] == {
        "batch": [
            {"subscription_count": 2},
            {"subscription_count": 1},
            {"subscription_count": 2},
            {"subscription_count": 1},
        ]
    }
    assert result["trigger_body"] == {
        "channels": {"batch-a": {"subscription_count": 2}, "batch-b": {"subscription_count": 1}}
    }
    assert result["channel_info"] == {"occupied": True, "subscription_count": 2}
    assert result["empty_info"]["occupied"] is False
    assert result["empty_info"].get("subscription_count", 0) == 0
    expected_list = {
        "channels": {
            "batch-a": {"subscription_count": 2},
            "batch-b": {"subscription_count": 1},
            "batch-c": {"subscription_count": 1},
        }
    }
    assert result["list"] == expected_list
    assert result["plain_list"] == {"channels": {"batch-a": {}, "batch-b": {}, "batch-c": {}}}

    assert py_batch == {}
    assert py_channel == {"occupied": True, "subscription_count": 2}
    assert py_list == expected_list


def test_cache_channels(server: ServerProcess) -> None:
    result = run_scenario(server, "cache")

    # The last event is kept while the channel is empty, and visible through info=cache.
    assert result["cache_info"]["occupied"] is False
    assert result["cache_info"]["cache"]["event"] == "price"
    assert result["cache_info"]["cache"]["data"] == '{"v":2}'
    # The late subscriber got exactly the last cached event, then the live one.
    assert result["hits"] == [{"v": 2}, {"v": 3}]
    assert result["cached_misses"] == 0
    assert result["cached_subscribed"] is True
    # An empty cache channel: one pusher:cache_miss and no event; still subscribed.
    assert result["miss_events"] == 1
    assert result["empty_events"] == 0
    assert result["empty_subscribed"] is True
    # A new subscriber after a live event gets that newer event only.
    assert result["late_hits"] == [{"v": 3}]
