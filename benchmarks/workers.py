"""How far ``overtone start --workers N`` goes: server CPU per unit of work, 1 and 2 workers.

Five setups, each run ``--repeat`` times (interleaved), each with a fresh ``redis-server`` (a
free 127.0.0.1 port, no persistence, stopped by its PID) and fresh servers:

- ``plain``: ``--workers 1`` without scaling: what one core gives (the unit "one core's worth").
- ``1 worker``: ``--workers 1`` with scaling on through Redis: a worker's own cost per unit,
  the cluster messages it publishes included.
- ``1 w + observer``: the same, plus a second node on another port that takes no load: its CPU
  is what applying another worker's changes costs (the term that grows with N).
- ``1 w + 3 observers``: three such nodes: whether that cost stays the same per receiving node,
  and what Redis pays per subscribed node (it sends every message to each).
- ``2 workers``: ``--workers 2`` on one port (``SO_REUSEPORT``), scaling on.

The load client is :mod:`benchmarks.cluster_client` (pinned to core 1): 10 000 connections
subscribe to one channel, events are triggered through the signed HTTP API until 1 000 000
deliveries, then 16 keep-alive connections send signed API requests for 5 s. Server processes
are pinned to core 0 in the single-worker setups and left unpinned with 2 workers. Per phase,
the CPU seconds of every process (workers, observers, Redis, load client) divided by the units
of work done (connections subscribed, frames delivered, requests answered) give the per-unit
costs the model extrapolates:

    C(N) = a + (N - 1) r + rho_in + N rho_out       server CPU us per unit, N workers
    E(N) = min(a0 / C(N), a0 / (N (rho_in + N rho_out)))   fraction of N cores' worth

    python -m benchmarks.workers                  # 10 000 connections, 3 runs per setup
    python -m benchmarks.workers --quick          # 5 000 connections, shorter phases, 1 run
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from benchmarks.cluster import Redis, scaling_env, stop_pid, stop_server, workers_ready
from benchmarks.history import overtone_source
from benchmarks.procstat import process_tree
from benchmarks.report import dig, is_num, noisy, number
from benchmarks.run import ROOT, Server, raise_nofile, run_client

PHASES = {  # phase -> (what a unit is, the figure counting the units)
    "connect": ("connection", "subscribed"),
    "fanout": ("delivery", "deliveries"),
    "api": ("request", "requests"),
}
TITLES = {
    "connect": "connect+subscribe",
    "fanout": "fan-out",
    "api": "signed API requests",
}
SCALE = (1, 2, 8, 32)


@dataclass(frozen=True)
class Setup:
    name: str
    workers: int = 1  # ``overtone start --workers`` of the node the load goes to
    redis: bool = True  # scaling on, through a fresh redis-server
    observers: int = 0  # more nodes on other ports, joined, taking no load
    pin: bool = True  # server processes (and Redis) on core 0

    def labels(self) -> list[str]:
        names = [f"worker{i + 1}" for i in range(self.workers)]
        observers = [f"observer{i + 1}" for i in range(self.observers)]
        return names + observers + ["redis"] * self.redis


SETUPS = (
    Setup("plain", redis=False),
    Setup("1 worker"),
    Setup("1 w + observer", observers=1),
    Setup("1 w + 3 observers", observers=3),
    Setup("2 workers", workers=2, pin=False),
)


class FdSampler(threading.Thread):
    """Largest number of open descriptors of each worker during the run, minus the count at
    the start: how the kernel spread the connections over the workers."""

    def __init__(self, pids: list[int]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.base = [self.count(pid) for pid in pids]
        self.peak = list(self.base)
        self.done = threading.Event()

    @staticmethod
    def count(pid: int) -> int:
        try:
            return len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            return 0

    def run(self) -> None:
        while not self.done.wait(0.5):
            now = [self.count(pid) for pid in self.pids]
            self.peak = [max(p, c) for p, c in zip(self.peak, now, strict=True)]

    def spread(self) -> list[int]:
        self.done.set()
        self.join(2)
        return [peak - base for peak, base in zip(self.peak, self.base, strict=True)]


def steal() -> float:
    """Seconds every core of the machine waited for the hypervisor (``steal`` in /proc/stat)."""
    try:
        with open("/proc/stat") as stat:
            return int(stat.readline().split()[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def measure(setup: Setup, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Start Redis and the servers of ``setup``, run the load client once, stop them all."""
    pin = args.pin and setup.pin
    redis = Redis(args.redis_server, workdir, pin) if setup.redis else None
    servers: list[Server] = []
    try:
        problem = redis.wait_ready() if redis is not None else None
        if problem is not None:
            return {"failure": problem}
        extra = scaling_env(redis) if redis is not None else {}
        node_args = argparse.Namespace(python=args.python, pin=pin)
        servers.append(
            Server("overtone", node_args, workdir, extra, ["--workers", str(setup.workers)])
        )
        problem = servers[0].wait_ready()
        if problem is None and setup.workers > 1:
            problem = workers_ready(servers[0], setup.workers)
        for _ in range(setup.observers):  # each joins once the others are up
            if problem is None:
                servers.append(Server("overtone", node_args, workdir, extra))
                problem = servers[-1].wait_ready()
        if problem is not None:
            return {"failure": f"{setup.name}: a server did not start: {problem}"}
        tree = process_tree(servers[0].proc.pid)
        workers = tree[1:] if setup.workers > 1 else tree[:1]
        if len(workers) != setup.workers:
            return {"failure": f"{setup.name}: found worker pids {workers}"}
        pids = workers + [s.proc.pid for s in servers[1:]]
        pids += [redis.proc.pid] if redis is not None else []
        cmd = [sys.executable, "-m", "benchmarks.cluster_client"]
        cmd += ["--connections", str(args.connections), "--ports", str(servers[0].port)]
        cmd += ["--server-pids", ",".join(map(str, pids)), "--timeout", str(args.timeout)]
        cmd += ["--quick"] if args.quick else []
        sampler = FdSampler(workers)
        sampler.start()
        log_path = workdir / f"client-{setup.name.replace(' ', '-')}.log"
        result = run_client(cmd, args.pin, 6 * args.timeout + 60, log_path)
        spread = sampler.spread()
        if "failure" in result:
            return result
        result.update(setup=asdict(setup), labels=setup.labels(), pids=pids, spread=spread)
        for server in servers:
            if server.proc.poll() is not None:
                result["failure"] = f"a server exited with {server.proc.returncode}"
        return result
    finally:
        for server in servers:
            stop_server(server)
        if redis is not None:
            stop_pid(redis.proc)


def figures(run: dict[str, Any], phase: str) -> dict[str, Any] | None:
    """Rate and CPU microseconds per unit of one phase of one run, per kind of process."""
    units = dig(run, phase, PHASES[phase][1])
    each, labels = dig(run, phase, "server_cpu_each"), run.get("labels")
    if not (is_num(units) and units and isinstance(each, list) and isinstance(labels, list)):
        return None

    def us(kind: str) -> float | None:
        spent = [s for s, lab in zip(each, labels, strict=True) if lab.startswith(kind)]
        return sum(spent) / units * 1e6 if spent else None

    workers, observers, redis = us("worker"), us("observer"), us("redis")
    count = sum(lab.startswith("observer") for lab in labels)
    return {
        "rate": dig(run, phase, "per_second"),
        "workers": workers,
        "observer": observers / count if observers is not None else None,  # each, on average
        "redis": redis,
        "server": sum(x for x in (workers, observers, redis) if x is not None),
        "client": dig(run, phase, "client_cpu") / units * 1e6,
        "core0": dig(run, phase, "core0_busy"),
        "core1": dig(run, phase, "core1_busy"),
        "partial": bool(dig(run, phase, "partial")),
        "noisy": noisy(run, phase),
    }


def median(runs: list[dict[str, Any]], phase: str, key: str) -> tuple[float | None, str]:
    """Median over the runs other processes did not disturb (over all when none is quiet),
    and the range over every run."""
    found = [f for f in (figures(run, phase) for run in runs) if f and is_num(f[key])]
    if not found:
        return None, ""
    values = [float(f[key]) for f in found]
    quiet = [float(f[key]) for f in found if not f["noisy"]] or values
    spread = f"{min(values):.1f}-{max(values):.1f}" if len(values) > 1 else ""
    return statistics.median(quiet), spread


def cell(value: float | None, digits: int = 1, spread: str = "") -> str:
    if value is None:
        return "-"
    return number(value, digits) + (f" ({spread})" if spread else "")


def measured_table(runs: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> str:
    names = [setup.name for setup in SETUPS]
    width = 24
    head = "".ljust(34) + "".join(name.rjust(width) for name in names)
    lines = [
        f"Measured: {args.connections} connections, medians of {args.repeat} run(s) "
        "(min-max over runs in brackets)",
        head,
    ]
    rows = [
        ("rate /s", "rate", 0),
        ("workers CPU us per {u}", "workers", 2),
        ("each observer CPU us per {u}", "observer", 2),
        ("redis CPU us per {u}", "redis", 2),
        ("server total us per {u}", "server", 2),
        ("load client CPU us per {u}", "client", 2),
    ]
    for phase, (unit, _) in PHASES.items():
        lines.append(TITLES[phase])
        for label, key, digits in rows:
            out = []
            for name in names:
                value, spread = median(runs[name], phase, key)
                out.append(cell(value, digits, "" if key == "rate" else spread).rjust(width))
            lines.append(("  " + label.format(u=unit)).ljust(34) + "".join(out))
        cores, quiet = [], []
        for name in names:
            found = [f for f in (figures(run, phase) for run in runs[name]) if f]
            busy = [median(runs[name], phase, core)[0] for core in ("core0", "core1")]
            cores.append("/".join(cell(b, 2) for b in busy).rjust(width))
            quiet.append(f"{sum(not f['noisy'] for f in found)} of {len(found)}".rjust(width))
        lines.append("  cores busy core0/core1".ljust(34) + "".join(cores))
        lines.append("  runs undisturbed".ljust(34) + "".join(quiet))
    lines.append(
        "subscribers per worker (2 workers, each run): "
        + ", ".join("/".join(map(str, run.get("spread", []))) for run in runs["2 workers"])
    )
    checks = []
    for name in names:
        for run in runs[name]:
            f = dig(run, "fanout")
            if isinstance(f, dict) and "misses" in f:
                mark = "*" if f.get("partial") else ""
                checks.append(f"{f['duplicates']}/{f['misses']}/{f['stray']}{mark}")
            else:
                checks.append(str(run.get("failure", "-"))[:60])
    lines.append("fan-out duplicates/misses/stray, every run: " + ", ".join(checks))
    lines.append(
        "* = the phase hit its time bound; undisturbed = other processes took < 10 % of a core"
        " in that phase (medians are over those runs when there are any);\nprocess CPU"
        " excludes softirq (loopback TCP), so rates stay below 1 / cost."
    )
    return "\n".join(lines)


def constants(runs: dict[str, list[dict[str, Any]]], phase: str) -> dict[str, float] | None:
    """a0, a, r, rho_in, rho_out of one workload, from the medians of the three 1-worker
    setups; None when a figure is missing.

    Fan-out's cluster terms are per event, not per delivery: an observer or Redis spends a
    few milliseconds in a whole fan-out phase, below the 10 ms resolution of process CPU
    times. They are taken from the API phase (one request is one event, to a channel without
    subscribers) and divided by the subscribers per event."""
    cluster, per = phase, 1.0
    if phase == "fanout":
        subs = [dig(run, "fanout", "subscribers") for run in runs["1 worker"]]
        subs = [s for s in subs if is_num(s) and s]
        if not subs:
            return None
        cluster, per = "api", float(statistics.median(subs))
    a0 = median(runs["plain"], phase, "workers")[0]
    a = median(runs["1 worker"], phase, "workers")[0]
    r = median(runs["1 w + observer"], cluster, "observer")[0]
    r3 = median(runs["1 w + 3 observers"], cluster, "observer")[0]
    # Redis per unit against the nodes subscribed to its channel (1, 2, 4): rho_in + m rho_out
    points = [
        (m, median(runs[name], cluster, "redis")[0])
        for m, name in ((1, "1 worker"), (2, "1 w + observer"), (4, "1 w + 3 observers"))
    ]
    found = [(float(m), y) for m, y in points if y is not None]
    if a0 is None or a is None or r is None or len(found) < 2:
        return None
    mean_m = statistics.fmean(m for m, _ in found)
    mean_y = statistics.fmean(y for _, y in found)
    slope = sum((m - mean_m) * (y - mean_y) for m, y in found) / sum(
        (m - mean_m) ** 2 for m, _ in found
    )
    rho_out = max(0.0, slope)
    rho_in = max(0.0, mean_y - rho_out * mean_m)
    k = {"a0": a0, "a": a, "r": r / per, "rho_in": rho_in / per, "rho_out": rho_out / per}
    k["r3"] = r3 / per if r3 is not None else float("nan")
    return k


def cost(k: dict[str, float], n: int) -> float:
    """C(N): server CPU us per unit of work with N workers, Redis included."""
    return k["a"] + (n - 1) * k["r"] + k["rho_in"] + n * k["rho_out"]


def rate(k: dict[str, float], n: int) -> float:
    """Units per second N workers reach when the N cores (and Redis on one of them) are full."""
    rho = k["rho_in"] + n * k["rho_out"]
    return 1e6 * min(n / cost(k, n), 1 / rho if rho else float("inf"))


def efficiency(k: dict[str, float], n: int) -> tuple[float, bool]:
    """Fraction of N cores' worth, and whether single-threaded Redis is the bound."""
    rho = k["rho_in"] + n * k["rho_out"]
    by_cpu = k["a0"] / cost(k, n)
    by_redis = k["a0"] / (n * rho) if rho else float("inf")
    return min(by_cpu, by_redis), by_redis < by_cpu


def model_table(runs: dict[str, list[dict[str, Any]]]) -> tuple[str, dict[str, Any]]:
    names = ("a0", "a", "r", "r3", "rho_in", "rho_out")
    lines = [
        "Model constants, server CPU us per unit (medians): C(N) = a + (N-1) r + rho_in + "
        "N rho_out",
        "".ljust(32)
        + "".join(k.rjust(9) for k in names)
        + "C(2) model".rjust(12)
        + "measured".rjust(10)
        + "ceiling /s (at N)".rjust(20),
    ]
    found: dict[str, dict[str, float]] = {}
    for phase, (unit, _) in PHASES.items():
        k = constants(runs, phase)
        if k is None:
            lines.append(f"{TITLES[phase]}: missing figures")
            continue
        found[phase] = k
        total = median(runs["2 workers"], phase, "server")[0]
        rates = {n: rate(k, n) for n in range(1, 257)}
        best = max(rates, key=rates.__getitem__)
        lines.append(
            f"{TITLES[phase]} per {unit}".ljust(32)
            + "".join(f"{k[name]:9.3f}" if k[name] < 1 else f"{k[name]:9.1f}" for name in names)
            + f"{cost(k, 2):12.1f}{cell(total):>10}{number(rates[best]):>14} "
            + (f"({best})" if best < 256 else "(>256)")
        )
    lines += [
        "",
        "Fraction of N cores' worth: E(N) = min(a0 / C(N), a0 / (N rho(N))) (R: Redis-bound)",
        "".ljust(26)
        + "".join(f"N={n}".rjust(9) for n in SCALE)
        + "N=2 measured".rjust(14)
        + "raw 2w/(2 x plain)".rjust(20),
    ]
    out: dict[str, Any] = {}
    for phase, k in found.items():
        predicted = {n: efficiency(k, n) for n in SCALE}
        total = median(runs["2 workers"], phase, "server")[0]
        rate2 = median(runs["2 workers"], phase, "rate")[0]
        rate1 = median(runs["plain"], phase, "rate")[0]
        measured = k["a0"] / total if total else None
        raw = rate2 / (2 * rate1) if rate2 and rate1 else None
        lines.append(
            TITLES[phase].ljust(26)
            + "".join(f"{e:8.2f}{'R' if bound else ' '}" for e, bound in predicted.values())
            + f"{cell(measured, 2):>14}{cell(raw, 2):>20}"
        )
        out[phase] = {
            **k,
            "predicted": {str(n): round(e, 3) for n, (e, _) in predicted.items()},
            "redis_bound": {str(n): bound for n, (_, bound) in predicted.items()},
            "cost_2_model": cost(k, 2),
            "cost_2_measured": total,
            "measured_2": measured,
            "raw_2": raw,
        }
    lines.append(
        "a0: plain worker; a: 1 worker with Redis (own work); r: the observer (applying another"
        " worker's changes); r3: each of 3 observers;\nrho_in + N rho_out: Redis, fitted over 1,"
        " 2 and 4 nodes subscribed; fan-out's"
        " r and rho are the API phase's per-event figures / subscribers per event;\n"
        "ceiling: the highest cluster-wide rate over N <= 256, and that N;\n"
        "N=2 measured = a0 / server total with 2 workers;\n"
        "raw = 2-worker rate / (2 x plain rate), capped here by the load client sharing the"
        " 2 cores."
    )
    return "\n".join(lines), out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="overtone --workers scaling benchmark")
    parser.add_argument("--connections", type=int, help="subscribers (10 000; 5 000 quick)")
    parser.add_argument("--quick", action="store_true", help="shorter phases, 1 run per setup")
    parser.add_argument("--repeat", type=int, help="runs per setup, interleaved (3; 1 quick)")
    parser.add_argument("--timeout", type=float, default=60.0, help="bound for each phase, s")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--python", default=str(ROOT / ".venv/bin/python"), help="for overtone")
    parser.add_argument("--redis-server", default="/usr/bin/redis-server")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="skip taskset")
    parser.add_argument("--from-json", type=Path, help="print the tables of an earlier --json")
    args = parser.parse_args(argv)
    if args.from_json is not None:
        saved = orjson.loads(args.from_json.read_bytes())
        args.connections, args.repeat = saved["args"]["connections"], saved["args"]["repeat"]
        print(measured_table(saved["runs"], args) + "\n\n" + model_table(saved["runs"])[0])
        return 0
    if args.connections is None:
        args.connections = 5_000 if args.quick else 10_000
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if args.pin and (os.cpu_count() or 1) < 2:
        print("a second core is missing: running unpinned", flush=True)
        args.pin = False
    soft, hard = raise_nofile()
    print(f"RLIMIT_NOFILE raised to {soft} (hard cap {hard}); each process needs N + ~150 fds")
    if args.connections + 200 > hard:
        print(f"warning: {args.connections} connections exceed the fd cap {hard}", flush=True)
    print(f"overtone imported from {overtone_source(args)}", flush=True)
    runs: dict[str, list[dict[str, Any]]] = {setup.name: [] for setup in SETUPS}
    started, stolen = time.monotonic(), steal()
    with tempfile.TemporaryDirectory(prefix="overtone-workers-") as tmp:
        for repeat in range(max(1, args.repeat)):
            for setup in SETUPS:
                print(f"... {setup.name}, run {repeat + 1}", flush=True)
                result = measure(setup, args, Path(tmp))
                if "failure" in result:
                    print(f"    failed: {result['failure']}", flush=True)
                runs[setup.name].append(result)
    measured = measured_table(runs, args)
    model, predicted = model_table(runs)
    wall, stolen = time.monotonic() - started, steal() - stolen
    print(f"\n{measured}\n\n{model}\n")
    cores = os.cpu_count() or 1
    print(f"took {wall:.0f} s; hypervisor steal {stolen / (wall * cores):.1%} of {cores} cores")
    if args.json is not None:
        report = {"nofile": [soft, hard], "args": {**vars(args), "json": str(args.json)}}
        report.update(runs=runs, model=predicted)
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
