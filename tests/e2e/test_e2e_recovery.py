"""Lossless reconnect (protocol.md §8) with the client add-on ``static/recovery.js``.

pusher-js 8, pusher-js 7, laravel-echo 2 (Node) and pusher-js in headless Chromium reach one
overtone node through a TCP proxy that can cut the network and that records every WebSocket
frame crossing it, so each test checks what the clients saw and what was on the wire.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.e2e_helpers import CHROMIUM, run_scenario
from support.servers import ServerProcess, start_server

pytestmark = pytest.mark.e2e

Json = dict[str, Any]
CLIENTS = ["pusher-js-8", "pusher-js-7", "laravel-echo"]


@pytest.fixture
def roomy_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A node keeping up to 1000 events per channel (the drop tests miss about 180)."""
    proc = start_server(tmp_path, {"OVERTONE_HISTORY_MAX_EVENTS": "1000"})
    yield proc
    proc.stop()


def no_traceback(server: ServerProcess) -> None:
    assert "Traceback" not in server.log(), server.log()


def plain(items: list[Json]) -> list[Json]:
    return [{"position": item["position"], "recovered": item.get("recovered")} for item in items]


def position_part(recover: Json, previous: str | None = None) -> Json:
    """``recover`` without the previous connection's socket id, which must be well formed
    (and be ``previous`` when given): the add-on names it so toOthers() events are skipped."""
    rest = dict(recover)
    socket_id = rest.pop("socket_id")
    assert re.fullmatch(r"\d+\.\d+", socket_id), recover
    if previous is not None:
        assert socket_id == previous
    return rest


def reconnected(result: Json) -> None:
    """The client lost its connection, went through connecting, and is connected again."""
    states = result["states"]
    first = states.index("connected")
    assert "connecting" in states[first + 1 :], states
    assert states[-1] == "connected", states
    assert result["first_socket"] != result["last_socket"]


@pytest.mark.parametrize("client", CLIENTS)
def test_network_drop_recovers_every_event_once_in_order(
    roomy_server: ServerProcess, client: str
) -> None:
    result = run_scenario(
        roomy_server, "recovery_drop", timeout=75, extra_env={"OVERTONE_RECOVERY_CLIENT": client}
    )

    assert result["client"] == client
    base = result["base_offset"]
    assert base == 0  # a fresh node: the channel's stream starts here
    # What the app's callbacks got: 1..201, each once, in order; no resync.
    assert result["received"] == list(range(1, 202))
    assert result["timeline_extra"] == []
    assert result["resyncs"] == []
    reconnected(result)
    assert result["proxy_refused"] >= 1
    assert result["cut_ms"] >= 5000
    # The wire: a plain first subscribe, the resubscribe carries the position of event 20,
    # overtone recovers and sends every later event once, with consecutive offsets.
    epoch = result["successes"][0]["position"]["epoch"]
    assert result["position_before_cut"] == {"epoch": epoch, "offset": 20}
    subscribes = result["subscribes"]
    assert subscribes[0] == {"auth": "", "channel": "recovery-drop"}
    resubscribe = dict(subscribes[-1])
    recover = position_part(resubscribe.pop("recover"), result["first_socket"])
    assert resubscribe == {"auth": "", "channel": "recovery-drop"}
    assert recover == {"epoch": epoch, "offset": 20}
    last = plain(result["successes"])[-1]
    assert last["recovered"] is True
    assert last["position"]["epoch"] == epoch
    # 21..180 were published while cut off: all of them had to come from the history.
    assert 180 <= last["position"]["offset"] <= 200
    assert result["offsets_after_reconnect"] == list(range(21, 202))
    assert result["position_after"] == {"epoch": epoch, "offset": 201}
    no_traceback(roomy_server)


def test_history_bound_exceeded_resyncs_once(tmp_path: Path) -> None:
    server = start_server(tmp_path, {"OVERTONE_HISTORY_MAX_EVENTS": "10"})
    try:
        result = run_scenario(server, "recovery_resync", timeout=75)
        log_ok = "Traceback" not in server.log()
    finally:
        server.stop()

    assert log_ok, server.log()
    assert [c["client"] for c in result["clients"]] == CLIENTS
    for client in result["clients"]:
        epoch = client["successes"][0]["position"]["epoch"]
        # 6..30 are gone: one onResync, one overtone:resync on the channel (Echo's listen),
        # after the resubscription and before any later event; nothing old, nothing twice.
        resync = ["onResync", "overtone:resync"]
        assert client["timeline"] == [*range(1, 6), *resync, *range(31, 36)], client
        assert client["resyncs"] == [
            {"channel": "recovery-resync", "position": {"epoch": epoch, "offset": 30}}
        ]
        assert client["position_before_cut"] == {"epoch": epoch, "offset": 5}
        assert position_part(client["subscribes"][-1]["recover"]) == {"epoch": epoch, "offset": 5}
        assert plain(client["successes"])[-1] == {
            "position": {"epoch": epoch, "offset": 30},
            "recovered": False,
        }
        assert client["position_after_resync"] == {"epoch": epoch, "offset": 30}
        assert client["position_at_end"] == {"epoch": epoch, "offset": 35}
        assert client["states"][-1] == "connected"


def test_page_starts_from_a_position_read_over_http(server: ServerProcess) -> None:
    result = run_scenario(server, "recovery_bootstrap", timeout=30)

    rendered, fresh = result["rendered"], result["fresh"]
    assert rendered["offset"] == 3
    assert fresh["offset"] == 0
    # Both clients of the channel asked to recover from the rendered position, and did.
    recover = {"auth": "", "channel": "recovery-bootstrap", "recover": rendered}
    assert result["subscribes"] == [recover, recover]
    recovered = {"position": {"epoch": rendered["epoch"], "offset": 10}, "recovered": True}
    assert plain(result["successes"]) == [recovered, recovered]
    assert result["fresh_subscribes"] == [
        {"auth": "", "channel": "recovery-bootstrap-fresh", "recover": fresh}
    ]
    assert plain(result["fresh_successes"]) == [
        {"position": {"epoch": fresh["epoch"], "offset": 3}, "recovered": True}
    ]
    # Exactly the events published after the position, then the live one.
    by_kind = {c["client"]: c for c in result["clients"]}
    assert by_kind["pusher-js-8"]["timeline"] == list(range(4, 12))
    assert by_kind["laravel-echo"]["timeline"] == list(range(4, 12))
    assert by_kind["pusher-js-7"]["timeline"] == [1, 2, 3, 4]
    assert by_kind["pusher-js-8"]["position"] == {"epoch": rendered["epoch"], "offset": 11}
    assert by_kind["pusher-js-7"]["position"] == {"epoch": fresh["epoch"], "offset": 4}
    no_traceback(server)


def test_plain_clients_ignore_the_history_fields(server: ServerProcess) -> None:
    result = run_scenario(server, "recovery_plain", timeout=30)

    expected = [
        {"channel": "recovery-plain", "event": "first", "data": {"n": 1, "text": "object data"}},
        {"channel": "recovery-plain", "event": "second", "data": "a plain string"},
    ]
    assert result["a_events"] == expected  # pusher-js 8
    assert result["b_events"] == expected  # pusher-js 7
    assert result["c_events"] == [
        {"channel": "presence-recovery-plain", "event": "third", "data": {"n": 3}}
    ]
    assert result["members"] == {"count": 1, "me": {"id": "7", "info": {"name": "user 7"}}}
    # The history fields were on the wire, and no client asked to recover.
    assert result["offsets"] == [
        ["first", "recovery-plain", 1],
        ["first", "recovery-plain", 1],
        ["second", "recovery-plain", 2],
        ["second", "recovery-plain", 2],
        ["third", "presence-recovery-plain", 1],
    ]
    assert all("recover" not in data for data in result["subscribes"])
    assert len(result["successes"]) == 3
    assert all(item["position"]["offset"] == 0 for item in result["successes"])
    no_traceback(server)


def test_add_on_handle_unsubscribe_and_uninstall(server: ServerProcess) -> None:
    result = run_scenario(server, "recovery_api", timeout=30)

    assert result["misuse"] == {
        "named_export_is_install": True,
        "twice": "Error: OvertoneRecovery is already installed on this Pusher instance",
        "not_pusher": (
            "TypeError: OvertoneRecovery.install(pusher): expected a pusher-js Pusher instance"
        ),
        "bad_position": (
            'TypeError: OvertoneRecovery: a position is {epoch, offset}, not {"epoch":"e"}'
        ),
    }
    epoch = result["successes"][0]["position"]["epoch"]
    assert result["positions"] == {
        "after_two": {"epoch": epoch, "offset": 2},
        "after_unsubscribe": None,
        "after_three": {"epoch": epoch, "offset": 3},
        "after_four": {"epoch": epoch, "offset": 4},
    }
    assert result["received"] == [1, 2, 3, 4, 5]
    assert result["restored"] == {"send_event": True, "unsubscribe": True, "marker": True}
    channel = "recovery-api"
    subscribes = result["subscribes"]
    recovering = dict(subscribes[2])
    assert position_part(recovering.pop("recover")) == {"epoch": epoch, "offset": 3}
    assert [*subscribes[:2], recovering, subscribes[3]] == [
        {"auth": "", "channel": channel},  # first subscribe
        {"auth": "", "channel": channel},  # after unsubscribe: the position was forgotten
        {"auth": "", "channel": channel},  # after a reconnect: recovers (checked above)
        {"auth": "", "channel": channel},  # after uninstall
    ]
    assert [item["recovered"] for item in plain(result["successes"])] == [None, None, True, None]
    # A presence channel: the signed subscribe keeps auth and channel_data, gains recover.
    presence = result["presence_subscribes"]
    assert "recover" not in presence[0]
    assert presence[1]["recover"]["offset"] == 1
    assert presence[1]["channel_data"] == presence[0]["channel_data"]
    assert presence[1]["auth"].startswith("test-key:")
    assert [item.get("recovered") for item in result["presence_successes"]][:2] == [None, True]
    assert result["presence_received"] == [1, 2]
    assert result["presence_members"] == 1
    no_traceback(server)


def test_add_on_against_a_node_without_history(tmp_path: Path) -> None:
    server = start_server(tmp_path, {"OVERTONE_HISTORY_ENABLED": "false"})
    try:
        result = run_scenario(server, "recovery_off", timeout=30)
        log_ok = "Traceback" not in server.log()
    finally:
        server.stop()

    assert log_ok, server.log()
    assert result["timeline"] == [1, 2, 3, 4]
    assert result["position"] is None
    assert result["subscribes"] == [{"auth": "", "channel": "recovery-off"}] * 2
    assert all("position" not in frame for frame in result["successes"])
    # A channel started from a position anyway cannot be recovered: one resync.
    assert result["started_subscribes"][0]["recover"] == {
        "epoch": "from-another-life",
        "offset": 5,
    }
    [answer] = result["started_successes"]
    assert answer["recovered"] is False
    assert "position" not in answer
    assert result["started_timeline"] == ["onResync", "overtone:resync", 1]
    assert result["started_resyncs"] == [{"channel": "recovery-off-started", "position": None}]
    assert result["started_position"] is None


def test_chromium_page_with_the_served_add_on_recovers(roomy_server: ServerProcess) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    result = run_scenario(roomy_server, "recovery_browser", timeout=100)

    assert result["problems"] == []
    assert "Chrome/" in result["user_agent"]
    # The <script> tag loaded the add-on from overtone itself.
    [served] = [s for s in result["scripts"] if s["url"].endswith("/overtone/recovery.js")]
    assert served["url"] == f"{roomy_server.http_url}/overtone/recovery.js"
    assert served["status"] == 200
    assert served["content_type"] == "application/javascript; charset=utf-8"
    assert served["cache_control"] == "public, max-age=3600"
    assert served["etag"]
    # Every event on the page once, in order, across the cut.
    assert result["received"] == list(range(1, 152))
    assert result["listed"] == 151
    assert result["resyncs"] == []
    reconnected(result)
    epoch = result["successes"][0]["position"]["epoch"]
    assert result["position_before_cut"] == {"epoch": epoch, "offset": 20}
    recover = position_part(result["subscribes"][-1]["recover"], result.get("first_socket"))
    assert recover == {"epoch": epoch, "offset": 20}
    last = plain(result["successes"])[-1]
    assert last["recovered"] is True
    assert 120 <= last["position"]["offset"] <= 150
    assert result["position_after"] == {"epoch": epoch, "offset": 151}
    no_traceback(roomy_server)
