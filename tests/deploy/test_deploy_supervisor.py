"""``overtone deploy supervisor``: a real supervisord runs, restarts and drains overtone."""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import pwd
import re
import resource
import shlex
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from deploy.deploy_helpers import binary, clean_env, cli, run, until
from support.redis_server import RedisServer
from support.servers import APP_ID, APP_KEY, APP_SECRET, free_port, scaled

USER = pwd.getpwuid(os.geteuid()).pw_name
HARD_LIMIT = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
NOFILE = min(65_535, HARD_LIMIT)
"""What the program asks for: 65535, or what this machine allows without privileges."""
LOW_SOFT_LIMIT = 1024


def app_dir(tmp_path: Path, port: int, extra: str = "") -> Path:
    """An application directory whose ``.env`` configures overtone (the only source)."""
    directory = tmp_path / "app"
    directory.mkdir()
    (directory / ".env").write_text(
        f"REVERB_APP_ID={APP_ID}\nREVERB_APP_KEY={APP_KEY}\nREVERB_APP_SECRET={APP_SECRET}\n"
        f"REVERB_SERVER_HOST=127.0.0.1\nREVERB_SERVER_PORT={port}\n"
        f"OVERTONE_SHUTDOWN_TIMEOUT=5\n{extra}"
    )
    return directory


def children(pid: int) -> set[int]:
    """The PIDs whose parent is ``pid``."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.add(int(stat.parent.name))
    return found


def program(tmp_path: Path, directory: Path, *flags: str) -> str:
    log = str(tmp_path / "overtone.log")
    result = cli(
        "deploy", "supervisor", "--app-dir", str(directory), "--user", USER, "--log", log, *flags
    )
    assert result.code == 0, result.err
    return result.out


def health(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/up", timeout=1) as answer:
        return bool(answer.status == 200)


def open_files_limit(pid: int) -> tuple[int, int]:
    """The soft and hard ``Max open files`` of a running process."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError(f"no open-file limit for {pid}")


class Supervisord:
    """``supervisord -n`` with everything in ``tmp_path``; stopped by PID."""

    def __init__(self, tmp_path: Path, program_conf: Path) -> None:
        self.conf = tmp_path / "supervisord.conf"
        self.log = tmp_path / "supervisord.log"
        self.conf.write_text(
            f"[unix_http_server]\nfile={tmp_path / 's.sock'}\n\n"
            f"[supervisord]\nnodaemon=true\nlogfile={self.log}\n"
            f"pidfile={tmp_path / 'supervisord.pid'}\nchildlogdir={tmp_path}\n\n"
            "[rpcinterface:supervisor]\n"
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n"
            f"[supervisorctl]\nserverurl=unix://{tmp_path / 's.sock'}\n\n"
            f"[include]\nfiles = {program_conf}\n"
        )
        # Under the classic 1024 soft limit (hard limit unchanged); sh execs supervisord.
        soft = min(LOW_SOFT_LIMIT, HARD_LIMIT)
        supervisord = shlex.join([binary("supervisord"), "-n", "-c", str(self.conf)])
        command = f"ulimit -S -n {soft} && exec {supervisord}"
        self.process = subprocess.Popen(
            ["/bin/sh", "-c", command],
            env=clean_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def ctl(self, *command: str) -> subprocess.CompletedProcess[str]:
        return run(binary("supervisorctl"), "-c", str(self.conf), *command, timeout=30)

    def pid(self, name: str = "overtone") -> int:
        """The program's PID (0 while it is not running)."""
        answer = self.ctl("pid", name).stdout.strip()
        return int(answer) if answer.isdigit() else 0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(scaled(30))
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def serving_pid(manager: Supervisord, port: int, previous: int = 0) -> int:
    """Wait until supervisord runs a process other than ``previous`` and /up answers."""

    def probe() -> int:
        pid = manager.pid()
        return pid if pid not in (0, previous) and health(port) else 0

    return int(str(until(f"overtone under supervisord (not pid {previous})", probe)))


@pytest.fixture
def supervisord(tmp_path: Path) -> Iterator[tuple[Supervisord, int, str]]:
    binary("supervisorctl")
    port = free_port()
    text = program(tmp_path, app_dir(tmp_path, port), "--nofile", str(NOFILE))
    conf = tmp_path / "program.conf"
    conf.write_text(text)
    manager = Supervisord(tmp_path, conf)
    try:
        yield manager, port, text
    finally:
        manager.stop()


def test_program_section_has_the_production_settings(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "REVERB_SCALING_ENABLED=true\nREDIS_URL=redis://127.0.0.1:6379\n"
    )
    text = program(tmp_path, tmp_path, "--workers", "2", "--nofile", "200000")
    section = configparser.RawConfigParser(inline_comment_prefixes=(";", "#"))
    section.read_string(text)
    options = dict(section["program:overtone"])
    assert options["directory"] == str(tmp_path)
    assert options["user"] == USER
    assert options["stopsignal"] == "TERM"
    assert int(options["stopwaitsecs"]) > 10  # OVERTONE_SHUTDOWN_TIMEOUT default
    for flag in ("autostart", "autorestart", "stopasgroup", "killasgroup", "redirect_stderr"):
        assert options[flag] == "true", flag
    argv = shlex.split(options["command"])
    assert argv[:2] == ["/bin/sh", "-c"]
    assert "ulimit -n 200000" in argv[2]
    executable = shlex.split(argv[2].rsplit("exec ", 1)[1])
    assert os.path.isabs(executable[0]) and os.access(executable[0], os.X_OK)
    assert executable[-3:] == ["start", "--workers", "2"]


def test_supervisord_runs_restarts_and_drains_overtone(
    supervisord: tuple[Supervisord, int, str],
) -> None:
    manager, port, _ = supervisord
    first = serving_pid(manager, port)
    cmdline = Path(f"/proc/{first}/cmdline").read_bytes().split(b"\0")
    assert b"start" in cmdline and not cmdline[0].endswith(b"sh")  # sh exec'd overtone
    # supervisord itself runs under a 1024 soft limit; the program raised its own.
    assert open_files_limit(manager.process.pid)[0] == min(LOW_SOFT_LIMIT, HARD_LIMIT)
    assert open_files_limit(first) == (NOFILE, NOFILE)

    # A crash (SIGKILL) is repaired: a new process answers /up.
    os.kill(first, signal.SIGKILL)
    second = serving_pid(manager, port, previous=first)
    assert second != first

    # `supervisorctl stop` drains: the client gets 4200 and the process exits 0 on SIGTERM.
    with connect(f"ws://127.0.0.1:{port}/app/{APP_KEY}?protocol=7", open_timeout=5) as client:
        assert json.loads(client.recv(timeout=5))["event"] == "pusher:connection_established"
        stopped = manager.ctl("stop", "overtone")
        assert "stopped" in stopped.stdout, stopped.stdout + stopped.stderr
        frames: list[str] = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                frames.append(str(client.recv(timeout=5)))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4200
    assert any('"code":4200' in frame for frame in frames), frames
    log = manager.log.read_text()
    assert re.search(r"stopped: overtone \(exit status 0\)", log), log
    assert "terminated by SIGKILL" in log  # the crash we caused, nothing else
    assert log.count("terminated by") == 1, log
    assert manager.pid() == 0
    assert "cannot raise" not in (manager.log.parent / "overtone.log").read_text()


def test_file_limit_falls_back_to_the_hard_limit_and_says_so(tmp_path: Path) -> None:
    port = free_port()
    too_many = int(Path("/proc/sys/fs/nr_open").read_text()) + 1  # refused even for root
    text = program(tmp_path, app_dir(tmp_path, port), "--nofile", str(too_many))
    section = configparser.RawConfigParser(inline_comment_prefixes=(";", "#"))
    section.read_string(text)
    argv = shlex.split(section["program:overtone"]["command"].replace("%%", "%"))
    log = tmp_path / "direct.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv,
            cwd=tmp_path / "app",
            env=clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, cleaned up below
        )
    try:
        until("overtone started by the command", lambda: health(port))
        assert b"overtone" in Path(f"/proc/{process.pid}/cmdline").read_bytes()  # exec'd
        assert open_files_limit(process.pid) == (HARD_LIMIT, HARD_LIMIT)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(scaled(15)) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            with contextlib.suppress(ProcessLookupError):  # whatever the group left behind
                os.killpg(process.pid, signal.SIGKILL)
    message = f"cannot raise the open-file limit to {too_many}, using {HARD_LIMIT}"
    assert message in log.read_text()


def test_workers_under_supervisord_restart_one_by_one_on_sighup(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    binary("supervisorctl")
    port = free_port()
    scaling = f"REVERB_SCALING_ENABLED=true\nREDIS_URL={redis_server.url}\n"
    directory = app_dir(tmp_path, port, scaling)
    conf = tmp_path / "program.conf"
    conf.write_text(program(tmp_path, directory, "--workers", "2", "--nofile", str(NOFILE)))
    manager = Supervisord(tmp_path, conf)
    try:
        main = serving_pid(manager, port)
        log = tmp_path / "overtone.log"
        # Both workers listen (a SIGHUP during the first start would only replace the ready ones).
        until("two ready workers", lambda: log.read_text().count(" ready (pid ") == 2)
        old = children(main)
        assert len(old) == 2, old
        signalled = manager.ctl("signal", "HUP", "overtone")
        assert "signalled" in signalled.stdout, signalled.stdout + signalled.stderr
        # The port keeps answering while every worker is replaced.
        deadline = time.monotonic() + scaled(30)
        answers = 0
        while time.monotonic() < deadline:
            assert health(port)
            answers += 1
            workers = children(main)
            if len(workers) == 2 and not workers & old:
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"workers not replaced: {old} -> {children(main)}")
        assert manager.pid() == main and answers > 1
        stopped = manager.ctl("stop", "overtone")
        assert "stopped" in stopped.stdout, stopped.stdout + stopped.stderr
        events = manager.log.read_text()
        assert re.search(r"stopped: overtone \(exit status 0\)", events), events
    finally:
        manager.stop()
