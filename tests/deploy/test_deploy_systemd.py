"""``overtone deploy systemd``: a unit systemd accepts, with the production settings."""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
from pathlib import Path

import pytest

from deploy.deploy_helpers import cli, run


def unit(tmp_path: Path, *flags: str, env: str = "") -> str:
    (tmp_path / ".env").write_text(env)
    result = cli("deploy", "systemd", "--app-dir", str(tmp_path), "--user", "root", *flags)
    assert result.code == 0, result.err
    return result.out


def parse(text: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


def test_unit_has_the_production_settings(tmp_path: Path) -> None:
    service = parse(unit(tmp_path, env="OVERTONE_SHUTDOWN_TIMEOUT=25\n"))["Service"]
    argv = shlex.split(service["ExecStart"])
    assert os.path.isabs(argv[0]) and os.access(argv[0], os.X_OK), argv
    assert argv[-1] == "start"
    assert service["WorkingDirectory"] == str(tmp_path)
    assert service["User"] == "root"
    assert service["Restart"] == "always"
    assert service["RestartSec"] == "1"
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) > 25
    assert service["LimitNOFILE"] == "65535"
    # One process: SIGHUP would end it, so there is no reload.
    assert "ExecReload" not in service


def test_workers_get_a_rolling_reload(tmp_path: Path) -> None:
    env = "REVERB_SCALING_ENABLED=true\nREDIS_URL=redis://127.0.0.1:6379\n"
    service = parse(unit(tmp_path, "--workers", "4", "--nofile", "100000", env=env))["Service"]
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert shlex.split(service["ExecStart"])[-3:] == ["start", "--workers", "4"]
    assert service["LimitNOFILE"] == "100000"


def test_workers_without_redis_are_refused(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("")
    flags = ["--user", "root", "--workers", "2"]
    result = cli("deploy", "systemd", "--app-dir", str(tmp_path), *flags)
    assert result.code == 2
    assert "REVERB_SCALING_ENABLED" in result.err


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (the configparser checks above still run)")
    path = tmp_path / "overtone.service"
    path.write_text(unit(tmp_path))
    checked = run(analyze, "verify", str(path))
    complaints = [line for line in checked.stderr.splitlines() if "overtone.service" in line]
    assert checked.returncode == 0 and not complaints, checked.stderr


def test_output_file_and_bad_input(tmp_path: Path) -> None:
    written = tmp_path / "overtone.service"
    result = cli("deploy", "systemd", "--app-dir", str(tmp_path), "--user", "u", "-o", str(written))
    assert result.code == 0 and result.out == ""
    assert "ExecStart=" in written.read_text()
    assert "not found, using defaults" in result.err  # no .env in the app directory yet
    missing = cli("deploy", "nginx", "--server-name", "x", "--env-file", str(tmp_path / "nope"))
    assert missing.code == 2 and "no such file" in missing.err
    (tmp_path / ".env").write_text("REVERB_SERVER_PORT=eighty\n")
    bad = cli("deploy", "systemd", "--app-dir", str(tmp_path), "--user", "u")
    assert bad.code == 2 and "REVERB_SERVER_PORT='eighty' is not an integer" in bad.err
    (tmp_path / ".env").write_text("")
    injected = cli("deploy", "systemd", "--app-dir", str(tmp_path), "--user", "u\nUser=root")
    assert injected.code == 2 and "--user" in injected.err
