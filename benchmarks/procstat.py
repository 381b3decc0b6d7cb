"""CPU and memory figures from /proc and getrusage, for the load client's phases."""

from __future__ import annotations

import os
import resource
import time
from typing import Any


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a server may run worker processes)."""
    found: list[int] = []
    todo = [pid] if pid > 0 else []
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


def rss_kb(pid: int) -> int:
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


def cpu_of(pid: int) -> float:
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


def busy_cpu() -> float:
    """User+nice+system CPU seconds of the whole machine since boot (all cores)."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
        return (int(fields[1]) + int(fields[2]) + int(fields[3])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Meter:
    """Wall, client CPU, server CPU and everybody else's CPU seconds spent since creation."""

    def __init__(self, server_pid: int) -> None:
        self.pid = server_pid
        self.wall, self.cpu, self.server = time.perf_counter(), own_cpu(), cpu_of(server_pid)
        self.busy = busy_cpu()

    def result(self, **figures: Any) -> dict[str, Any]:
        client, server = own_cpu() - self.cpu, cpu_of(self.pid) - self.server
        return {
            **figures,
            "wall": round(time.perf_counter() - self.wall, 3),
            "client_cpu": round(client, 3),
            "server_cpu": round(max(0.0, server), 3),
            "other_cpu": round(max(0.0, busy_cpu() - self.busy - client - server), 3),
        }
