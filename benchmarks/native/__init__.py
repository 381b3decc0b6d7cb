"""The compiled load client (``loadgen.c``): built on first use, run pinned to the client's core.

:func:`phases` runs its phases against a server and returns the figures in the shape of the
Python client's phases (:class:`benchmarks.procstat.Meter`), with the compiled client's
own CPU seconds as ``client_cpu``, so the tables show whether it was near its core's limit.
Building needs a C compiler and OpenSSL's headers (Debian: ``gcc``, ``libssl-dev``; ``make
bench`` installs them); without them :func:`build` says why and the runner keeps the Python
client's figures.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from benchmarks.procstat import Meter, Pids

SOURCE = Path(__file__).with_name("loadgen.c")
BINARY = Path(__file__).with_name("build") / "loadgen"


def build() -> tuple[Path | None, str]:
    """The binary, compiled when missing or older than its source; or ``None`` and why."""
    if BINARY.exists() and BINARY.stat().st_mtime >= SOURCE.stat().st_mtime:
        return BINARY, ""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None, "no C compiler (install gcc)"
    BINARY.parent.mkdir(exist_ok=True)
    cmd = [compiler, "-O2", "-Wall", "-o", str(BINARY), str(SOURCE), "-lcrypto"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return None, f"cannot build loadgen (libssl-dev missing?): {done.stderr[-300:]}"
    return BINARY, ""


def phases(
    binary: Path,
    argv: list[str],
    server_pid: Pids,
    pin: bool,
    budget: float,
    ops_keys: list[tuple[str, str]],
    after: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run ``loadgen`` with ``argv`` (pinned to core 1 with ``pin``), at most ``budget`` s.

    ``ops_keys`` names its phases in order and, for each, the count of operations in its
    JSON line (``done``, ``deliveries``, ``requests``) for ``server_us_per_op``. Each phase
    is started by a line on the client's stdin, and the server's CPU is read around it, up
    to the moment the client prints the phase's figures (so closing its connections at the
    end is not counted). ``after`` is called with each phase's name and figures as soon as
    they are read, while the client still holds its connections (to read the server's RSS).
    """
    cmd = [str(binary), *argv]
    if pin:
        cmd = ["taskset", "-c", "1", *cmd]
    results: dict[str, dict[str, Any]] = {}
    pipe = subprocess.PIPE
    with subprocess.Popen(cmd, stdin=pipe, stdout=pipe, stderr=pipe) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            for name, ops_key in ops_keys:
                meter = Meter(server_pid)
                proc.stdin.write(b"go\n")
                proc.stdin.flush()
                line = proc.stdout.readline()
                if not line:
                    results[name] = {"error": f"loadgen ended early (exit {proc.poll()})"}
                    break
                figures: dict[str, Any] = orjson.loads(line)
                results[name] = meter.result(
                    ops=int(figures.get(ops_key) or 0),
                    client_cpu=float(figures.pop("client_cpu")),
                    wall=float(figures.pop("wall")),
                    client="loadgen (C)",
                    **figures,
                )
                if after is not None:
                    after(name, results[name])
            proc.stdin.close()
            proc.wait(budget)
        except (subprocess.TimeoutExpired, BrokenPipeError):
            results["error"] = {"error": f"loadgen did not finish within {budget:.0f} s"}
        finally:
            if proc.poll() is None:
                proc.kill()
    return results
