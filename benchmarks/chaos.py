"""Chaos under load, with accounting: a cluster keeps publishing while a node is SIGKILLed and
restarted and Redis is restarted empty; every event is counted per client.

Three ``overtone start`` nodes (``REVERB_SCALING_ENABLED=true``, short heartbeat and node
timeout) share one fresh ``redis-server`` (a free port, a temporary directory, no persistence
unless ``--appendonly``). Subscribers are spread over the nodes, in three classes:

- ``plain``: Pusher-protocol clients on public channels; after a lost connection they
  subscribe again, without ``recover`` (pusher-js without the add-on).
- ``recovering``: the same, but they keep the last position seen (``position`` of
  ``subscription_succeeded``, ``offset`` of each event) and subscribe again with
  ``recover: {epoch, offset}`` (protocol.md §8, what the recovery add-on does).
- ``presence``: plain clients on a presence channel, each its own user id (for ghost
  members after the kill).

A client whose connection is lost reconnects to the next node that accepts it (what
pusher-js does through a load balancer). A publisher sends numbered events through the
signed HTTP API, round-robin over the nodes, at a steady rate; an event counts as published
only when the API answered 200 (failures are counted apart). Timeline: steady load, SIGKILL
one node, start it again on its port, later SIGTERM Redis and start it again on the same port
(empty), steady load, stop.

Accounting per client: *expected* = events published (200) after the client's first
subscription, *delivered* = those it received, *duplicated* = receipts beyond the first (must
be 0), *lost* = expected but never received. A loss is attributed to the failure window its
publication overlaps (``kill``, ``restart``, ``redis``) or to ``other``. A recovering client's
loss is *told to reload* when it lies in the gap of a resubscription answered
``recovered: false``, else it is *silent*. After the load stops, every node's counts are
compared with the clients' truth: ``subscription_count`` per channel, presence users (ghost
members = reported but not connected), ``/connections``.

    python -m benchmarks.chaos             # ~75 s: 3 nodes, 300 subscribers, 40 events/s
    python -m benchmarks.chaos --quick     # ~35 s
    python -m benchmarks.chaos --appendonly   # Redis with AOF: its restart keeps the streams

The scenario (:func:`run_chaos`) drives any :class:`Controller`; the test suite brings one
built on its own process helpers (tests/cluster/test_chaos.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.chaos_clients import Client, Published, Publisher
from benchmarks.credentials import BENCH_APP, api_get
from benchmarks.localprocs import Controller, LocalCluster


@dataclass
class Plan:
    plain: int = 100
    recovering: int = 100
    presence: int = 100
    rate: float = 40.0  # events per second, each to every channel
    warmup: float = 8.0  # steady load before the kill
    down: float = 3.0  # the killed node stays down this long
    between: float = 10.0  # steady load between the node's restart and Redis's
    after: float = 10.0  # steady load after Redis is back
    drain: float = 2.0  # after the last publication, before counting
    settle: float = 20.0  # at most this long for every node's counts to match the truth
    victim: int = 1  # the node that is SIGKILLed
    slack: float = 0.5  # seconds around a window: an event in flight at its edge belongs to it


@dataclass
class Window:
    name: str
    start: float
    end: float


PUBLIC = ("chaos-a", "chaos-b")
PRESENCE = "presence-chaos"


def make_clients(plan: Plan, ctl: Controller) -> list[Client]:
    ports = ctl.ports
    clients: list[Client] = []
    for kind, count in (
        ("plain", plan.plain),
        ("recovering", plan.recovering),
        ("presence", plan.presence),
    ):
        for i in range(count):
            channel = PRESENCE if kind == "presence" else PUBLIC[i % len(PUBLIC)]
            user = f"user-{i}" if kind == "presence" else ""
            home = i % len(ports)
            clients.append(Client(f"{kind}-{i}", kind, channel, ports, home, ctl.creds, user))
    return clients


async def wait_for(check: Callable[[], bool], seconds: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(step)
    return True


def truth(clients: list[Client]) -> dict[str, Any]:
    """What the clients know: subscribers per channel, presence users, open connections."""
    subs = Counter(client.channel for client in clients if client.subscribed)
    users = sorted({c.user for c in clients if c.subscribed and c.channel == PRESENCE})
    connections = sum(1 for client in clients if client.connected)
    return {"subs": dict(subs), "users": users, "connections": connections}


def reported(ctl: Controller, index: int) -> dict[str, Any]:
    """What node ``index`` reports (signed HTTP API; blocking)."""
    port, creds = ctl.ports[index], ctl.creds
    base = f"/apps/{creds.app_id}"
    subs = {}
    for channel in (*PUBLIC, PRESENCE):
        info = api_get(creds, port, f"{base}/channels/{channel}", {"info": "subscription_count"})
        subs[channel] = int(info.get("subscription_count", 0))
    users = api_get(creds, port, f"{base}/channels/{PRESENCE}/users")["users"]
    connections = api_get(creds, port, f"{base}/connections")["connections"]
    return {
        "subs": {k: v for k, v in subs.items() if v},
        "users": sorted(str(user["id"]) for user in users),
        "connections": int(connections),
    }


async def counts_match(ctl: Controller, clients: list[Client], seconds: float) -> dict[str, Any]:
    """Poll every node until its counts equal the clients' truth (bounded)."""
    started = time.monotonic()
    last: list[dict[str, Any]] = []
    while True:
        want = truth(clients)
        last = []
        for index in range(len(ctl.ports)):
            try:
                last.append(await asyncio.to_thread(reported, ctl, index))
            except OSError as exc:
                last.append({"error": repr(exc)})
        if all(each == want for each in last):
            return {"exact": True, "after": round(time.monotonic() - started, 2), "truth": want}
        if time.monotonic() - started > seconds:
            ghosts = [sorted(set(each.get("users", [])) - set(want["users"])) for each in last]
            return {"exact": False, "truth": want, "nodes": last, "ghosts": ghosts}
        await asyncio.sleep(0.25)


async def run_chaos(
    plan: Plan, ctl: Controller, say: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run the timeline against ``ctl``; return the accounting (see :func:`account`)."""
    t0 = time.monotonic()

    def note(text: str) -> None:
        say(f"[{time.monotonic() - t0:6.1f} s] {text}")

    clients = make_clients(plan, ctl)
    stop_clients, stop_publisher = asyncio.Event(), asyncio.Event()
    tasks = [asyncio.ensure_future(client.run(stop_clients)) for client in clients]
    windows: list[Window] = []
    publisher = Publisher(ctl.creds, ctl.ports, [*PUBLIC, PRESENCE], plan.rate)
    try:
        if not await wait_for(lambda: all(c.subscribed for c in clients), 30):
            missing = [c.name for c in clients if not c.subscribed]
            raise RuntimeError(f"{len(missing)} clients did not subscribe: {missing[:5]}")
        note(f"{len(clients)} clients subscribed; publishing {plan.rate:g} events/s")
        publishing = asyncio.ensure_future(publisher.run(stop_publisher))
        await asyncio.sleep(plan.warmup)
        start = time.monotonic()
        note(f"SIGKILL node {plan.victim} (port {ctl.ports[plan.victim]})")
        victims = [(c, len(c.gaps)) for c in clients if c.node == plan.victim]
        await asyncio.to_thread(ctl.kill, plan.victim)
        back = [(c, n) for c, n in victims]
        await wait_for(lambda: all(len(c.gaps) > n and c.gaps[-1].back for c, n in back), 15)
        note(f"the killed node's {len(victims)} clients are subscribed again elsewhere")
        await asyncio.sleep(max(0.0, plan.down - (time.monotonic() - start)))
        windows.append(Window("kill", start, time.monotonic()))  # until it is started again
        start = time.monotonic()
        await asyncio.to_thread(ctl.restart, plan.victim)
        windows.append(Window("restart", start, time.monotonic()))
        note(f"node {plan.victim} started again on port {ctl.ports[plan.victim]}")
        await asyncio.sleep(plan.between)
        start = time.monotonic()
        note("Redis: SIGTERM, then started again on its port")
        await asyncio.to_thread(ctl.restart_redis)
        windows.append(Window("redis", start, time.monotonic()))
        note("every node reached Redis again")
        await asyncio.sleep(plan.after)
        stop_publisher.set()
        await publishing
        note(f"publisher stopped after {len(publisher.log)} attempts")
        await asyncio.sleep(plan.drain)
        counts = await counts_match(ctl, clients, plan.settle)
        note(f"counts {'exact' if counts['exact'] else 'NOT exact'}: {counts}")
    finally:
        stop_publisher.set()
        stop_clients.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        publisher.close()
        for client in clients:
            client.close()
    result = account(clients, publisher.log, windows, plan.slack)
    result["counts"] = counts
    result["windows"] = [
        {"name": w.name, "start": round(w.start - t0, 2), "end": round(w.end - t0, 2)}
        for w in windows
    ]
    result["seconds"] = round(time.monotonic() - t0, 1)
    return result


def window_of(event: Published, windows: list[Window], slack: float = 0.5) -> str:
    for window in windows:
        if event.sent <= window.end + slack and event.done >= window.start - slack:
            return window.name
    return "other"


def told_to_reload(client: Client, seq: int, event: Published, slack: float = 0.5) -> bool:
    """Whether ``seq`` lies in the gap of a resubscription answered ``recovered: false``, or
    was published between the last whole-stream receipt and an unasked ``recovered: false``."""
    for gap in client.gaps:
        if gap.recovered is not False:
            continue
        if gap.unasked:
            if gap.lost - slack <= event.sent <= gap.back:
                return True
            continue
        before = client.order[: gap.received_before]
        after = client.order[gap.received_before :]
        low = max(before, default=0)
        high = min(after, default=1 << 62)
        if low < seq < high:
            return True
    return False


def account(
    clients: list[Client], log: list[Published], windows: list[Window], slack: float = 0.5
) -> dict[str, Any]:
    """Per client class: expected, delivered, duplicated, lost (by window), recoveries."""
    published = {event.seq: event for event in log if event.status == 200}
    failed = [event for event in log if event.status != 200]
    classes: dict[str, dict[str, Any]] = {}
    for client in clients:
        row = classes.setdefault(
            client.kind,
            {
                "clients": 0,
                "expected": 0,
                "delivered": 0,
                "duplicated": 0,
                "lost": 0,
                "lost_by_window": Counter[str](),
                "told_to_reload": 0,
                "silent": 0,
                "silent_by_window": Counter[str](),
                "silent_detectable": 0,
                "recovered_true": 0,
                "recovered_false": 0,
                "reconnects": 0,
                "unconfirmed": 0,
                "anomalies": Counter[str](),
                "worst": [],
            },
        )
        expected = {s for s, e in published.items() if e.sent >= client.first_sub > 0}
        got = set(client.received)
        lost = sorted(expected - got)
        row["clients"] += 1
        row["expected"] += len(expected)
        row["delivered"] += len(expected & got)
        row["duplicated"] += sum(n - 1 for n in client.received.values() if n > 1)
        row["unconfirmed"] += len(got - set(published))
        row["lost"] += len(lost)
        row["reconnects"] += len(client.gaps)
        row["recovered_true"] += sum(1 for gap in client.gaps if gap.recovered is True)
        row["recovered_false"] += sum(1 for gap in client.gaps if gap.recovered is False)
        row["anomalies"].update({f"{kind} (clients)": 1 for kind in client.anomalies})
        row["anomalies"]["no offset (events)"] += client.anomalies["no offset"]
        silent = 0
        for seq in lost:
            where = window_of(published[seq], windows, slack)
            row["lost_by_window"][where] += 1
            if client.recovering and told_to_reload(client, seq, published[seq], slack):
                row["told_to_reload"] += 1
            else:
                silent += 1
                row["silent_by_window"][where] += 1
        row["silent"] += silent
        if silent and {"offset went back", "no offset"} & set(client.anomalies):
            row["silent_detectable"] += silent  # the frames showed the stream broke
        if silent and len(row["worst"]) < 3:
            row["worst"].append({"client": client.name, "silent": silent, "seqs": lost[:10]})
    for row in classes.values():
        for key in ("lost_by_window", "silent_by_window", "anomalies"):
            row[key] = {k: v for k, v in row[key].items() if v}
    api_failures = Counter(window_of(event, windows, slack) for event in failed)
    losers = Counter(
        seq
        for client in clients
        for seq in set(published) - set(client.received)
        if published[seq].sent >= client.first_sub > 0
    )
    lost_events = [
        {
            "seq": seq,
            "node": published[seq].node,
            "window": window_of(published[seq], windows, slack),
            "clients": n,
        }
        for seq, n in sorted(losers.items())
    ]
    return {
        "lost_events": lost_events,
        "published": len(published),
        "api_failures": len(failed),
        "api_failures_by_window": dict(api_failures),
        "classes": classes,
    }


def table(result: dict[str, Any]) -> str:
    """The accounting as a text table."""
    head = (
        f"{'class':<11}{'clients':>8}{'expected':>10}{'delivered':>10}{'dup':>5}{'lost':>7}"
        f"  {'lost by window (kill/restart/redis/other)':<42}{'reload':>7}{'silent':>7}"
        f"{'recov t/f':>11}"
    )
    lines = [head, "-" * len(head)]
    for kind, row in result["classes"].items():
        by = row["lost_by_window"]
        spread = "/".join(str(by.get(w, 0)) for w in ("kill", "restart", "redis", "other"))
        recov = f"{row['recovered_true']}/{row['recovered_false']}" if kind == "recovering" else "-"
        reload = str(row["told_to_reload"]) if kind == "recovering" else "-"
        lines.append(
            f"{kind:<11}{row['clients']:>8}{row['expected']:>10}{row['delivered']:>10}"
            f"{row['duplicated']:>5}{row['lost']:>7}  {spread:<42}{reload:>7}"
            f"{row['silent']:>7}{recov:>11}"
        )
    lines.append(
        f"published (API 200): {result['published']}, API failures: {result['api_failures']} "
        f"{result['api_failures_by_window']}"
    )
    lines.append(
        "windows (s from start): "
        + ", ".join(f"{w['name']} {w['start']}-{w['end']}" for w in result["windows"])
    )
    by_window: dict[str, list[str]] = {}
    for event in result["lost_events"]:
        by_window.setdefault(event["window"], []).append(
            f"#{event['seq']}@node{event['node']}:{event['clients']}"
        )
    for name, events in by_window.items():
        lines.append(
            f"events lost in {name} (#seq@publishing node:clients that lost it): "
            + " ".join(events[:30])
            + (" ..." if len(events) > 30 else "")
        )
    for kind, row in result["classes"].items():
        keys = ("reconnects", "unconfirmed", "silent_detectable", "anomalies")
        extra = {k: row[k] for k in keys if row[k]}
        if row["silent_by_window"]:
            extra["silent_by_window"] = row["silent_by_window"]
        if extra:
            lines.append(f"{kind}: {extra}")
    counts = result.get("counts", {})
    if counts.get("exact"):
        lines.append(f"counts exact on every node {counts['after']} s after the load stopped")
    else:
        lines.append(f"counts NOT exact: {counts}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="overtone chaos benchmark")
    parser.add_argument("--quick", action="store_true", help="shorter steady phases")
    parser.add_argument("--clients", type=int, default=100, help="per class")
    parser.add_argument("--rate", type=float, default=40.0, help="events per second")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--appendonly", action="store_true", help="Redis with AOF")
    parser.add_argument("--json", type=Path, help="write the accounting to this file")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    n = args.clients
    plan = Plan(plain=n, recovering=n, presence=n, rate=args.rate)
    if args.quick:
        plan.warmup, plan.between, plan.after = 4.0, 4.0, 5.0
    with tempfile.TemporaryDirectory(prefix="overtone-chaos-") as tmp:
        cluster = LocalCluster(Path(tmp), args.nodes, args.appendonly, BENCH_APP)
        try:
            print(
                f"Redis on {cluster.redis.port} (appendonly {args.appendonly}), nodes on "
                f"{cluster.ports}",
                flush=True,
            )
            result = asyncio.run(run_chaos(plan, cluster, lambda s: print(s, flush=True)))
        finally:
            cluster.close()
    result["appendonly"] = args.appendonly
    print("\n" + table(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
