"""The clinic example (``examples/clinic``) in headless Chromium against a real overtone.

Two uvicorn processes run the FastAPI app: one configured for the ``server`` fixture, one
without ``REVERB_APP_KEY``. ``clinic_consultation.mjs`` drives a doctor and a patient through
presence, typing, chat, a live status change and a notification; at its stage ``live-done``
overtone is stopped and the pages must still work (fail-soft).

``clinic_recovery.mjs``: the doctor changes the appointment and chats while the patient's
network is cut (a proxy on 127.0.0.2 resets and refuses the patient's connections for 5 s)
and while overtone restarts (one server: drained and started again; ``--workers 2`` on
Redis: rolling); the patient's page must end up with every change, chat line and
notification exactly once.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from e2e.e2e_helpers import CHROMIUM, NODE_MODULES, Scenario
from support.netcut import NetworkCut
from support.redis_server import start_redis
from support.servers import ServerProcess, free_port, scaled, start_server

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("requirements")]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "clinic"
DRIVER = Path(__file__).resolve().parent / "clinic_consultation.mjs"
UNREACHABLE = "is unreachable"
NOT_CONFIGURED = "realtime broadcasting is off: REVERB_APP_KEY is not set"


@dataclass
class ClinicApp:
    """``uvicorn clinic.app:app`` on a free 127.0.0.1 port; stopped by PID."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        """Everything uvicorn and the app wrote so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(scaled(10))
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_clinic(work: Path, name: str, reverb: dict[str, str]) -> ClinicApp:
    """Start the app with ``reverb`` as its only ``REVERB_*`` values; wait for ``/login``."""
    home = work / name
    home.mkdir()
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("REVERB_", "OVERTONE_", "CLINIC_"))
    }
    env.update(reverb)
    env["CLINIC_SECRET_KEY"] = f"test-cookie-secret-{name}"
    env["CLINIC_ENV_FILE"] = str(home / "no.env")  # nothing but these variables
    log_path = home / "clinic.log"
    command = [sys.executable, "-m", "uvicorn", "clinic.app:app", "--app-dir", str(EXAMPLE)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--timeout-graceful-shutdown", "5"]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command, cwd=home, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    app = ClinicApp(process, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + scaled(20)
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"clinic {name} exited with {process.returncode}:\n{app.log()}")
        try:
            with urllib.request.urlopen(f"{app.url}/login", timeout=1) as answer:
                if answer.status == 200:
                    return app
        except OSError:
            time.sleep(0.1)
    app.stop()
    raise RuntimeError(f"clinic {name} did not answer in time:\n{app.log()}")


@pytest.fixture
def requirements() -> None:
    """Skip unless node, both node_modules folders and Chromium are there (before starting
    anything)."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not (NODE_MODULES / "playwright-core").is_dir():
        pytest.skip(f"{NODE_MODULES} is missing: run `npm ci` in tests/e2e")
    if not (EXAMPLE / "node_modules" / "laravel-echo").is_dir():
        pytest.skip(f"{EXAMPLE / 'node_modules'} is missing: run `npm ci` in examples/clinic")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")


@pytest.fixture
def clinics(server: ServerProcess, tmp_path: Path) -> Iterator[tuple[ClinicApp, ClinicApp]]:
    """The app pointed at ``server``, and the same app with no ``REVERB_APP_KEY``."""
    credentials = {"REVERB_APP_ID": server.app_id, "REVERB_APP_SECRET": server.secret}
    live = start_clinic(
        tmp_path,
        "live",
        {
            **credentials,
            "REVERB_APP_KEY": server.key,
            "REVERB_HOST": "127.0.0.1",
            "REVERB_PORT": str(server.port),
            "REVERB_SCHEME": "http",
        },
    )
    try:
        off = start_clinic(tmp_path, "off", credentials)
    except BaseException:
        live.stop()
        raise
    yield live, off
    live.stop()
    off.stop()


def broadcast_warnings(log: str) -> list[str]:
    """The ``overtone.broadcast`` logger's lines in an app log."""
    return [line for line in log.splitlines() if "overtone.broadcast" in line]


def test_clinic_consultation_live_then_fail_soft(
    server: ServerProcess, clinics: tuple[ClinicApp, ClinicApp], tmp_path: Path
) -> None:
    live, off = clinics
    extra = {"CLINIC_URL": live.url, "CLINIC_OFF_URL": off.url, "CLINIC_WORK_DIR": str(tmp_path)}
    # Scenario runs SCENARIOS / f"{name}.mjs": an absolute name points it at our driver.
    with Scenario(server, str(DRIVER.with_suffix("")), extra) as run:
        run.wait_stage("live-done", timeout=90)
        live_log = live.log()
        assert server.stop() == 0, server.log()
        run.resume("live-done")
        try:
            result = run.finish(timeout=90)
        except BaseException:
            print(f"--- clinic (live)\n{live.log()}\n--- clinic (off)\n{off.log()}")
            raise
    check_live(result["live"], server)
    assert broadcast_warnings(live_log) == [], live_log
    check_fail_soft(result["fail_soft"])
    check_not_configured(result["not_configured"])
    # Two broadcasts failed in each app: one warning each (a minute's worth), and no error.
    unreachable = broadcast_warnings(live.log())
    assert len(unreachable) == 1 and UNREACHABLE in unreachable[0], live.log()
    assert f"127.0.0.1:{server.port}" in unreachable[0]
    assert [line for line in broadcast_warnings(off.log()) if NOT_CONFIGURED in line] == [
        f"WARNING:     overtone.broadcast: {NOT_CONFIGURED}"
    ], off.log()
    for app in (live, off):
        assert "Traceback" not in app.log() and " 500 " not in app.log(), app.log()
    for name in ("doctor-live", "patient-live", "patient-home", "doctor-off", "patient-off"):
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def check_live(live: dict[str, Any], server: ServerProcess) -> None:
    """Presence, typing, chat, status and notification, all live."""
    assert live["presence"] == {"doctor": ["d1", "p1"], "patient": ["d1", "p1"]}
    assert live["after_leaving"] == ["d1"]
    assert live["typing"] == {
        "patient_saw": "Dr. Ana Souza is typing…",
        "doctor_saw": "João Lima is typing…",
    }
    sockets = live["sockets"]
    for who, answer in (("doctor", live["chat"]["sent"]), ("patient", live["chat"]["replied"])):
        assert answer["status"] == 200 and answer["body"]["ok"] is True, answer
        assert answer["body"]["broadcast"] is True
        assert answer["socket_header"] == sockets[who]  # X-Socket-ID: leave the sender out
        assert re.fullmatch(r"\d+\.\d+", sockets[who])
    # Each line once on each side: the sender's from its POST answer, the other's live.
    assert live["chat"]["sources"] == {
        "doctor_hello": ["sent"],
        "patient_hello": ["live"],
        "doctor_reply": ["live"],
        "patient_reply": ["sent"],
    }
    status = live["status"]
    assert status["answer"]["status"] == 200, status
    assert status["answer"]["body"]["broadcast"] is True
    assert status["answer"]["body"]["appointment"]["status"] == "in_progress"
    assert status["patient_saw"] == "In progress"
    assert status["doctor_result"] == "Saved: In progress"
    note = live["notification"]
    assert note["answer"]["status"] == 200 and note["answer"]["body"]["broadcast"] is True
    assert note["doctor_live_notes"] == 0  # send_to_user reached only the patient
    home = live["patient_home"]
    assert home["status"] == "In progress"
    assert home["notifications"] == ["Dr. Ana Souza: Your prescription is ready at the front desk."]
    prefix = f"ws://127.0.0.1:{server.port}/app/{server.key}?protocol=7&client=js"
    for who in ("doctor", "patient"):
        urls = live["websockets"][who]
        assert urls and all(url.startswith(prefix) for url in urls), urls
    assert live["problems"] == []


def check_fail_soft(soft: dict[str, Any]) -> None:
    """overtone stopped: pages render, say so, and actions still succeed."""
    assert soft["open_page"]["state"] == "off"
    assert soft["reloaded"] == {
        "state": "off",
        "text": "Realtime is off: reload to see changes",
    }
    assert soft["heading"] == "Consultation room r1"
    status = soft["status"]
    assert status["answer"]["status"] == 200
    assert status["answer"]["body"]["ok"] is True
    assert status["answer"]["body"]["broadcast"] is False
    assert status["result"] == "Saved: Completed (not sent live: realtime is off)"
    chat = soft["chat"]
    assert chat["answer"]["status"] == 200 and chat["answer"]["body"]["broadcast"] is False
    assert chat["result"] == "Sent (not live: realtime is off)"
    assert chat["doctor_lines"] == ["sent"]
    patient = soft["patient"]
    assert patient["badge"]["state"] == "off"
    assert patient["status"] == "Completed"  # the server kept what the doctor saved
    assert patient["chat"] == [
        "Dr. Ana Souza Hello João, how are you feeling today?",
        "João Lima Much better, thank you!",
        "Dr. Ana Souza Are you still there?",
    ]
    assert patient["members"] == "Unknown while realtime is off."
    assert patient["notify_state"] == "(not live)"
    assert soft["page_errors"] == []


def check_not_configured(disabled: dict[str, Any]) -> None:
    """No ``REVERB_APP_KEY``: ``frontend_config()`` is None, no Echo, no WebSocket."""
    assert disabled["badge"] == {"state": "disabled", "text": "Realtime is off (not configured)"}
    assert disabled["echo"] is None
    assert disabled["websockets"] == []
    for answer in (disabled["status"], disabled["chat"]):
        assert answer["status"] == 200, answer
        assert answer["body"]["ok"] is True and answer["body"]["broadcast"] is False
    assert disabled["status_result"] == "Saved: Confirmed (not sent live: realtime is off)"
    assert disabled["page_errors"] == []


RECOVERY_DRIVER = Path(__file__).resolve().parent / "clinic_recovery.mjs"
PATIENT_HOST = "127.0.0.2"
"""The patient's browser reaches the app and overtone at this address, through the proxy."""


def overtone_restart(server: ServerProcess) -> None:
    """``overtone restart``: rolling for a workers' supervisor, drain and exit for one server."""
    done = subprocess.run(
        [sys.executable, "-m", "overtone", "restart"],
        env={**os.environ, **server.env},
        capture_output=True,
        text=True,
        timeout=scaled(20),
        check=False,
    )
    assert done.returncode == 0, done.stderr


def start_again(server: ServerProcess, tmp_path: Path) -> ServerProcess:
    """A new ``overtone start`` on the drained server's port, as systemd's Restart= would."""
    assert server.process.wait(scaled(20)) == 0, server.log()
    log_path = tmp_path / f"overtone-{server.port}-again.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "overtone", "start"],
            cwd=tmp_path,
            env=server.env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    again = ServerProcess(process, server.port, log_path, server.env)
    deadline = time.monotonic() + scaled(15)
    while time.monotonic() < deadline:
        assert process.poll() is None, again.log()
        try:
            with urllib.request.urlopen(f"{again.http_url}/up", timeout=1) as answer:
                if answer.status == 200:
                    return again
        except OSError:
            time.sleep(0.05)
    again.stop()
    raise AssertionError(f"overtone did not start again:\n{again.log()}")


def wait_for_log(server: ServerProcess, text: str, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while server.log().count(text) < count:
        assert time.monotonic() < deadline, server.log()
        assert server.process.poll() is None, server.log()
        time.sleep(0.1)


@pytest.mark.parametrize("workers", [1, 2], ids=["one-server", "workers-2-redis"])
def test_clinic_patient_misses_nothing_through_a_network_cut_and_a_restart(
    workers: int, tmp_path: Path
) -> None:
    redis = start_redis(tmp_path) if workers > 1 else None
    env = {"REVERB_SCALING_ENABLED": "true", "REDIS_URL": redis.url} if redis else {}
    # The cut leaves a dead connection behind, as a real drop does: the drain gives up on it
    # after this many seconds (10 by default).
    env["OVERTONE_SHUTDOWN_TIMEOUT"] = "2"
    args = ("--workers", str(workers)) if workers > 1 else ()
    servers = [start_server(tmp_path, env, args=args)]
    stack = ExitStack()
    try:
        if workers > 1:
            wait_for_log(servers[0], "ready (pid", workers)
        app = start_clinic(
            tmp_path,
            "clinic",
            {
                "REVERB_APP_ID": servers[0].app_id,
                "REVERB_APP_KEY": servers[0].key,
                "REVERB_APP_SECRET": servers[0].secret,
                "REVERB_SERVER_PORT": str(servers[0].port),  # local: pages use the page's host
            },
        )
        stack.callback(app.stop)
        app_port = int(app.url.rsplit(":", 1)[1])
        proxy = stack.enter_context(
            NetworkCut(PATIENT_HOST, "127.0.0.1", [app_port, servers[0].port])
        )
        extra = {
            "CLINIC_URL": app.url,
            "CLINIC_PATIENT_URL": f"http://{PATIENT_HOST}:{app_port}",
            "CLINIC_WORK_DIR": str(tmp_path),
        }
        started = time.monotonic()
        with Scenario(servers[0], str(RECOVERY_DRIVER.with_suffix("")), extra) as run:
            try:
                run.wait_stage("cut", timeout=60)
                proxy.cut()
                cut_at = time.monotonic()
                run.resume("cut")
                run.wait_stage("restore", timeout=60)
                time.sleep(max(0.0, cut_at + scaled(5) - time.monotonic()))  # a 5 s cut
                proxy.restore()
                run.resume("restore")
                run.wait_stage("restart", timeout=90)
                overtone_restart(servers[0])
                with ThreadPoolExecutor(1) as pool:
                    # One server: started again as soon as it has drained (systemd's Restart=).
                    again = None if workers > 1 else pool.submit(start_again, servers[0], tmp_path)
                    run.resume("restart")
                    run.wait_stage("restarted", timeout=60)
                    if again is not None:
                        servers.append(again.result())
                if workers > 1:
                    wait_for_log(servers[0], "ready (pid", 2 * workers, timeout=60)
                run.resume("restarted")
                result = run.finish(timeout=180)
            except BaseException:
                print(f"--- clinic\n{app.log()}")
                for server in servers:
                    print(f"--- overtone (port {server.port})\n{server.log()}")
                raise
        elapsed = time.monotonic() - started
    finally:
        stack.close()
        for server in servers:
            server.stop()
        if redis is not None:
            redis.stop()

    patient, sent = result["patient"], result["sent"]
    lines = [(s["id"], f"Dr. Ana Souza {s['text']}") for s in sent if s["kind"] == "chat"]
    changes = [(s["version"], s["label"]) for s in sent if s["kind"] == "status"]
    notes = [(s["id"], f"Dr. Ana Souza: {s['text']}") for s in sent if s["kind"] == "note"][::-1]
    shown = patient["chat"] + patient["changes"] + patient["notes"]
    print(
        f"{workers} worker(s): {elapsed:.1f} s; proxy {proxy.stats()}; "
        f"{len(result['sockets'])} patient WebSockets; resyncs {patient['resyncs']}; "
        f"sources {Counter(x['source'] for x in shown)}; "
        f"not broadcast: {[a['what'] for a in result['answers'] if not a['broadcast']]}"
    )
    assert result["installed"] is True  # the page loaded the add-on from overtone
    # Back from the cut: what it missed was replayed (no reload), once each.
    after_cut = result["after_cut"]
    assert after_cut["resyncs"] == [], after_cut
    assert [x["id"] for x in after_cut["chat"]] == [i for i, _ in lines[: len(after_cut["chat"])]]
    assert {x["source"] for x in after_cut["chat"] + after_cut["changes"] + after_cut["notes"]} == {
        "live"
    }
    assert [(x["id"], x["text"]) for x in patient["chat"]] == lines  # each once, in order
    assert [(x["version"], x["label"]) for x in patient["changes"]] == changes
    assert [(x["id"], x["text"]) for x in patient["notes"]] == notes  # newest first
    assert [v for v, _ in changes] == list(range(1, len(changes) + 1))
    assert (patient["status"], patient["version"]) == ("completed", len(changes))
    assert result["doctor_chat"] == [i for i, _ in lines]
    assert result["problems"] == []
    assert proxy.stats()["reset"] >= 2 and proxy.stats()["refused"] >= 1  # the cut was real
    room, patients = "presence-consultation.r1", "private-patient.p1"
    if workers > 1:
        # One cluster: the history outlives each worker, so every missed event is replayed.
        assert patient["resyncs"] == [], patient
        assert all(a["broadcast"] for a in result["answers"]), result["answers"]
    else:
        # One server restarted: its history is gone, so the page reloads both channels.
        assert {room, patients} <= set(patient["resyncs"]), patient
