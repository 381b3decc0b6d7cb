"""Run the Node scenarios of ``tests/e2e/scenarios`` against a real ``overtone start``."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import pusher
import pytest

from support.servers import ServerProcess, scaled

E2E_DIR = Path(__file__).resolve().parent
SCENARIOS = E2E_DIR / "scenarios"
NODE_MODULES = E2E_DIR / "node_modules"
CHROMIUM = Path("/usr/bin/chromium")

Json = dict[str, Any]


def node() -> str:
    """The ``node`` executable; skip the test when Node or ``npm ci`` output is missing."""
    found = shutil.which("node")
    if found is None:
        pytest.skip("node is not installed (needed for the e2e scenarios)")
    if not (NODE_MODULES / "pusher-js").is_dir():
        pytest.skip(f"{NODE_MODULES} is missing: run `npm ci` in {E2E_DIR}")
    return found


def scenario_env(
    server: ServerProcess,
    extra: dict[str, str] | None = None,
    peers: Sequence[ServerProcess] = (),
) -> dict[str, str]:
    """The environment a scenario reads the server address and credentials from.

    With ``peers`` (the other nodes of a cluster), ``OVERTONE_PORTS`` lists every node's port,
    ``server`` (node 0) first.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("OVERTONE_")}
    if "OVERTONE_TEST_TIMEOUT_SCALE" in os.environ:
        env["OVERTONE_TEST_TIMEOUT_SCALE"] = os.environ["OVERTONE_TEST_TIMEOUT_SCALE"]
    env.update(
        {
            "OVERTONE_HOST": server.host,
            "OVERTONE_PORT": str(server.port),
            "OVERTONE_APP_ID": server.app_id,
            "OVERTONE_APP_KEY": server.key,
            "OVERTONE_APP_SECRET": server.secret,
        }
    )
    if peers:
        env["OVERTONE_PORTS"] = ",".join(str(node.port) for node in (server, *peers))
    env.update(extra or {})
    return env


def _last_json(stdout: str) -> Json | None:
    for raw in reversed(stdout.splitlines()):
        line = raw.strip()
        if line.startswith("{"):
            try:
                parsed = json.loads(line)
            except ValueError:
                continue
            if isinstance(parsed, dict):
                return parsed
    return None


def _failure(
    name: str,
    code: int | None,
    stdout: str,
    stderr: str,
    server: ServerProcess,
    peers: Sequence[ServerProcess] = (),
) -> str:
    logs = "".join(
        f"\n--- server log (port {node.port})\n{node.log()}" for node in (server, *peers)
    )
    return f"scenario {name} exited with {code}\n--- stdout\n{stdout}\n--- stderr\n{stderr}{logs}"


def run_scenario(
    server: ServerProcess,
    name: str,
    timeout: float = 30,
    extra_env: dict[str, str] | None = None,
    peers: Sequence[ServerProcess] = (),
) -> Json:
    """Run ``node scenarios/{name}.mjs`` to the end; return its JSON result (must be ok).

    ``peers``: the other nodes of a cluster (see :func:`scenario_env`).
    """
    completed = subprocess.run(
        [node(), str(SCENARIOS / f"{name}.mjs")],
        cwd=E2E_DIR,
        env=scenario_env(server, extra_env, peers),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=scaled(timeout),
        check=False,
    )
    result = _last_json(completed.stdout)
    details = _failure(
        name, completed.returncode, completed.stdout, completed.stderr, server, peers
    )
    assert completed.returncode == 0, details
    assert result is not None and result.get("ok") is True, details
    return result


class Scenario:
    """A scenario that stops at ``{"stage": ...}`` lines until the Python side resumes it."""

    def __init__(
        self,
        server: ServerProcess,
        name: str,
        extra_env: dict[str, str] | None = None,
        peers: Sequence[ServerProcess] = (),
    ) -> None:
        self.server = server
        self.peers = peers
        self.name = name
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stdout: list[str] = []
        self.process = subprocess.Popen(
            [node(), str(SCENARIOS / f"{name}.mjs")],
            cwd=E2E_DIR,
            env=scenario_env(server, extra_env, peers),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._stderr: list[str] = []
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.stdout.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        self._stderr.extend(self.process.stderr)

    def _details(self) -> str:
        return _failure(
            self.name,
            self.process.poll(),
            "".join(self.stdout),
            "".join(self._stderr),
            self.server,
            self.peers,
        )

    def wait_stage(self, stage: str, timeout: float = 15) -> Json:
        """Wait for the ``{"stage": stage, ...}`` line and return it."""
        try:
            while True:
                line = self.lines.get(timeout=scaled(timeout))
                if line is None:
                    pytest.fail(f"scenario ended before stage {stage!r}\n{self._details()}")
                message = _last_json(line)
                if message is not None and message.get("stage") == stage:
                    return message
        except queue.Empty:
            pytest.fail(f"no stage {stage!r} within {timeout} s\n{self._details()}")

    def resume(self, stage: str, data: Json | None = None) -> None:
        """Let the scenario go on past ``stage``; ``data`` is what its ``stage()`` returns."""
        assert self.process.stdin is not None
        line = stage if data is None else f"{stage} {json.dumps(data)}"
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def finish(self, timeout: float = 20) -> Json:
        """Wait for the scenario to exit; return its JSON result (must be ok)."""
        try:
            self.process.wait(scaled(timeout))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"scenario {self.name} still running after {timeout} s\n{self._details()}")
        # Let the reader threads drain what the process wrote.
        deadline = scaled(5)
        while True:
            try:
                if self.lines.get(timeout=deadline) is None:
                    break
            except queue.Empty:
                break
        result = _last_json("".join(self.stdout))
        assert self.process.returncode == 0, self._details()
        assert result is not None and result.get("ok") is True, self._details()
        return result

    def __enter__(self) -> Scenario:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@contextmanager
def python_sdk(server: ServerProcess, **options: Any) -> Iterator[Any]:
    """The PyPI ``pusher`` SDK pointed at the server (plain HTTP); its session closed after."""
    sdk = pusher.Pusher(
        app_id=server.app_id,
        key=server.key,
        secret=server.secret,
        host=server.host,
        port=server.port,
        ssl=False,
        timeout=int(scaled(5)),
        **options,
    )
    try:
        yield sdk
    finally:
        sdk._pusher_client.http.session.close()


def events(items: list[Json]) -> list[str]:
    """The event names of a scenario's recorded events, in order."""
    return [str(item["event"]) for item in items]
