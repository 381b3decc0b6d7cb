"""CPU and memory figures from /proc and getrusage, for the load client's phases."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Sequence
from typing import Any

Pids = int | Sequence[int]
"""One server process, or several (cluster nodes and their Redis): figures are summed."""


def process_tree(pids: Pids) -> list[int]:
    """The processes and their descendants (a server may run worker processes)."""
    found: list[int] = []
    todo = [pid for pid in ([pids] if isinstance(pids, int) else pids) if pid > 0]
    while todo and len(found) < 256:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    todo.extend(int(child) for child in children.read().split())
        except (OSError, ValueError):
            pass
    return found


def rss_kb(pid: Pids) -> int:
    """VmRSS of a process and its descendants in KiB (0 when unknown)."""
    total = 0
    for each in process_tree(pid):
        try:
            with open(f"/proc/{each}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except (OSError, ValueError):
            pass
    return total


def idle_rss(pid: Pids, before_kb: int, connections: int) -> dict[str, Any]:
    """The ``rss`` figures of a run: VmRSS now (``pid``'s tree) against ``before_kb``, and
    the KB each of ``connections`` idle connections costs."""
    after = rss_kb(pid)
    return {
        "before_kb": before_kb,
        "after_kb": after,
        "subscribed": connections,
        "kb_per_conn": (after - before_kb) / connections,
    }


def cpu_of(pid: Pids) -> float:
    """User+system CPU seconds of a process and its descendants (0.0 when unknown)."""
    ticks = 0
    for each in process_tree(pid):
        try:
            with open(f"/proc/{each}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> dict[str, float]:
    """Seconds since boot from /proc/stat: ``busy`` (user+nice+system, all cores), ``softirq``
    (all cores; loopback TCP work lands here, outside any process's own CPU time) and
    ``coreN`` (every non-idle second of core N)."""
    found: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    try:
        with open("/proc/stat") as stat:
            for line in stat:
                name, *values = line.split()
                if not name.startswith("cpu"):
                    break
                user, nice, system, _idle, _iowait, irq, softirq = map(int, values[:7])
                if name == "cpu":
                    found["busy"] = (user + nice + system) / tick
                    found["softirq"] = softirq / tick
                else:
                    found["core" + name[3:]] = (user + nice + system + irq + softirq) / tick
    except (OSError, ValueError):
        pass
    return found


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Meter:
    """Wall, client, server, other processes' and softirq CPU seconds since creation."""

    def __init__(self, server_pid: Pids) -> None:
        self.pid = server_pid
        self.wall, self.cpu, self.server = time.perf_counter(), own_cpu(), cpu_of(server_pid)
        self.each = [] if isinstance(server_pid, int) else [cpu_of(pid) for pid in server_pid]
        self.machine = machine_cpu()

    def result(
        self,
        ops: int | None = None,
        client_cpu: float | None = None,
        wall: float | None = None,
        **figures: Any,
    ) -> dict[str, Any]:
        """The figures plus CPU readings; with ``ops``, also the server's CPU microseconds per
        operation (``server_us_per_op``), a figure a saturated client cannot cap.

        ``client_cpu`` and ``wall`` replace this process's CPU and the time since creation
        when the client is another process (the compiled one) that measured them itself.
        """
        client = own_cpu() - self.cpu if client_cpu is None else client_cpu
        server = max(0.0, cpu_of(self.pid) - self.server)
        elapsed = time.perf_counter() - self.wall
        wall = elapsed if wall is None else wall
        now = machine_cpu()
        spent = {key: now[key] - self.machine.get(key, 0.0) for key in now}
        figures.update(
            wall=round(wall, 3),
            client_cpu=round(client, 3),
            server_cpu=round(server, 3),
            other_cpu=round(max(0.0, spent.get("busy", 0.0) - client - server), 3),
            softirq=round(spent.get("softirq", 0.0), 3),
            core0_busy=round(spent.get("core0", 0.0) / elapsed, 2) if elapsed else None,
            core1_busy=round(spent.get("core1", 0.0) / elapsed, 2) if elapsed else None,
        )
        if self.each and not isinstance(self.pid, int):  # CPU of each server process
            figures["server_cpu_each"] = [
                round(cpu_of(pid) - before, 3)
                for pid, before in zip(self.pid, self.each, strict=True)
            ]
        if ops is not None:
            figures["server_us_per_op"] = round(server / ops * 1e6, 2) if ops else None
        return figures
