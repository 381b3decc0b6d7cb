"""The compiled load client (``loadgen.c``): built on first use, run pinned to the client's core.

:func:`phase` runs one of its phases against a server and returns the figures in the shape of
the Python client's phases (:class:`benchmarks.procstat.Meter`), with the compiled client's
own CPU seconds as ``client_cpu``, so the tables show whether it was near its core's limit.
Building needs a C compiler and OpenSSL's headers (Debian: ``gcc``, ``libssl-dev``; ``make
bench`` installs them); without them :func:`build` says why and the runner keeps the Python
client's figures.
"""

from __future__ import annotations

import shutil
import subprocess
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


def phase(
    binary: Path, argv: list[str], server_pid: Pids, pin: bool, budget: float, ops_key: str
) -> dict[str, Any]:
    """Run ``loadgen`` with ``argv`` (pinned to core 1 with ``pin``), at most ``budget`` s.

    The server's CPU is read when the client prints its figures, before it closes its
    connections, so closing them is not counted. ``ops_key`` names the count of operations
    (``done`` or ``requests``) for ``server_us_per_op``.
    """
    cmd = [str(binary), *argv]
    if pin:
        cmd = ["taskset", "-c", "1", *cmd]
    meter = Meter(server_pid)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            proc.wait(budget)
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            return {"error": f"loadgen exit {proc.returncode}: {err[-300:]}"}
        figures: dict[str, Any] = orjson.loads(line)
        result = meter.result(
            ops=int(figures.get(ops_key) or 0),
            client_cpu=float(figures.pop("client_cpu")),
            wall=float(figures.pop("wall")),
            **figures,
        )
        proc.wait(budget)
        result["client"] = "loadgen (C)"
        return result
    except subprocess.TimeoutExpired:
        return {"error": f"loadgen still running after {budget:.0f} s"}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
