"""``overtone install``: writes the Reverb variables into ``.env`` and touches nothing else."""

from __future__ import annotations

import re
import stat
from pathlib import Path

from dotenv import dotenv_values

from deploy.deploy_helpers import cli
from overtone.cli.install import VARIABLES
from overtone.config import load_settings, read_environment

LARAVEL_ENV = """\
APP_NAME="Clinic Portal"
APP_ENV=production
APP_KEY=base64:c2VjcmV0LWtleS1mb3ItdGhlLWxhcmF2ZWwtYXBw
APP_DEBUG=false
APP_URL=https://clinic.example.com

# Logging
LOG_CHANNEL=stack   # daily in production
LOG_LEVEL=debug

DB_CONNECTION=mysql
DB_PASSWORD='p@ss word'
export QUEUE_CONNECTION=redis

BROADCAST_CONNECTION=log
MAIL_FROM_NAME="${APP_NAME}"
SIGNATURE="line one
line two"

# Reverb

REVERB_APP_KEY=
REVERB_HOST="clinic.example.com"
REVERB_PORT=443
REVERB_SCHEME=https
"""


def env_of(path: Path) -> dict[str, str | None]:
    return dict(dotenv_values(path))


def test_fresh_directory_gets_a_complete_working_env(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    result = cli("install", "--env-file", str(env_file))
    assert result.code == 0, result.err
    values = env_of(env_file)
    assert list(values) == list(VARIABLES)
    assert re.fullmatch(r"[1-9]\d{5}", values["REVERB_APP_ID"] or "")
    assert re.fullmatch(r"[a-z0-9]{20}", values["REVERB_APP_KEY"] or "")
    assert re.fullmatch(r"[a-z0-9]{32}", values["REVERB_APP_SECRET"] or "")
    assert values["BROADCAST_CONNECTION"] == "reverb"
    assert (values["REVERB_HOST"], values["REVERB_PORT"], values["REVERB_SCHEME"]) == (
        "localhost",
        "8080",
        "http",
    )
    assert (values["REVERB_SERVER_HOST"], values["REVERB_SERVER_PORT"]) == ("0.0.0.0", "8080")
    # The Vite mirrors are references, expanded by dotenv readers (and Vite).
    assert values["VITE_REVERB_APP_KEY"] == values["REVERB_APP_KEY"]
    assert values["VITE_REVERB_SCHEME"] == "http"
    text = env_file.read_text()
    assert 'VITE_REVERB_HOST="${REVERB_HOST}"\n' in text, text
    assert 'REVERB_HOST="localhost"\n' in text
    # The server accepts the file as it is.
    settings = load_settings(read_environment({}, env_file))
    assert [(a.id, a.key, a.secret) for a in settings.apps] == [
        (values["REVERB_APP_ID"], values["REVERB_APP_KEY"], values["REVERB_APP_SECRET"])
    ]
    assert not settings.using_dev_app
    # Output: every variable, secrets masked.
    assert str(values["REVERB_APP_SECRET"]) not in result.out
    assert str(values["REVERB_APP_KEY"]) not in result.out
    assert f"REVERB_APP_ID={values['REVERB_APP_ID']}" in result.out
    assert result.out.startswith(f"{env_file}: created\n")
    assert result.out.count("added") == len(VARIABLES)


def test_credentials_differ_between_installs(tmp_path: Path) -> None:
    first, second = tmp_path / "a.env", tmp_path / "b.env"
    cli("install", "--env-file", str(first))
    cli("install", "--env-file", str(second))
    a, b = env_of(first), env_of(second)
    assert a["REVERB_APP_KEY"] != b["REVERB_APP_KEY"]
    assert a["REVERB_APP_SECRET"] != b["REVERB_APP_SECRET"]


def test_laravel_env_keeps_every_line_and_value(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(LARAVEL_ENV)
    env_file.chmod(0o640)
    result = cli("install", "--env-file", str(env_file), "--host", "other.example.com")
    assert result.code == 0, result.err
    text = env_file.read_text()
    # Everything before the appended block is the original, except the empty key, filled in.
    original_lines = LARAVEL_ENV.splitlines()
    new_lines = text.splitlines()
    key_line = original_lines.index("REVERB_APP_KEY=")
    assert new_lines[:key_line] == original_lines[:key_line]
    assert re.fullmatch(r"REVERB_APP_KEY=[a-z0-9]{20}", new_lines[key_line])
    assert new_lines[key_line + 1 : len(original_lines)] == original_lines[key_line + 1 :]
    appended = new_lines[len(original_lines) :]
    assert appended[0] == ""  # one blank line separates the block
    assert [line.split("=")[0] for line in appended if line] == [
        "REVERB_APP_ID",
        "REVERB_APP_SECRET",
        "REVERB_SERVER_HOST",
        "REVERB_SERVER_PORT",
        "VITE_REVERB_APP_KEY",
        "VITE_REVERB_HOST",
        "VITE_REVERB_PORT",
        "VITE_REVERB_SCHEME",
    ]
    values = env_of(env_file)
    assert values["REVERB_HOST"] == "clinic.example.com"  # kept, --host did not win
    assert values["VITE_REVERB_HOST"] == "clinic.example.com"
    assert values["BROADCAST_CONNECTION"] == "log"
    assert values["SIGNATURE"] == "line one\nline two"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o640
    assert 'kept     REVERB_HOST="clinic.example.com"' in result.out
    assert re.search(r"filled +REVERB_APP_KEY=[a-z0-9]{4}\*+\n", result.out)
    # Warnings name what was kept against the operator's wish and the broadcaster setting.
    assert "BROADCAST_CONNECTION=log kept" in result.err
    assert 'REVERB_HOST kept as "clinic.example.com", not other.example.com' in result.err


def test_second_run_changes_nothing(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(LARAVEL_ENV)
    cli("install", "--env-file", str(env_file))
    after_first = env_file.read_bytes()
    second = cli("install", "--env-file", str(env_file))
    assert second.code == 0
    assert env_file.read_bytes() == after_first
    assert "unchanged" in second.out
    assert second.out.count("kept") == len(VARIABLES)


def test_force_replaces_managed_values_only(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(LARAVEL_ENV.replace("REVERB_APP_KEY=", "REVERB_APP_KEY=old-key # note"))
    cli("install", "--env-file", str(env_file))
    before = env_of(env_file)
    flags = ["--force", "--host", "ws.example.com", "--scheme", "https"]
    result = cli("install", "--env-file", str(env_file), *flags)
    assert result.code == 0, result.err
    after = env_of(env_file)
    for name in ("REVERB_APP_ID", "REVERB_APP_KEY", "REVERB_APP_SECRET"):
        assert after[name] != before[name], name
    assert after["REVERB_HOST"] == "ws.example.com"
    assert (after["REVERB_PORT"], after["REVERB_SCHEME"]) == ("443", "https")
    assert after["BROADCAST_CONNECTION"] == "reverb"
    untouched = {k: v for k, v in before.items() if k not in VARIABLES}
    assert {k: v for k, v in after.items() if k not in VARIABLES} == untouched
    text = env_file.read_text()
    assert len(re.findall(r"^REVERB_APP_KEY=", text, re.M)) == 1
    assert re.search(r"^REVERB_APP_KEY=[a-z0-9]{20} # note$", text, re.M)  # comment kept
    assert "export QUEUE_CONNECTION=redis\n" in text
    assert "replaced" in result.out
    assert "BROADCAST_CONNECTION" not in result.err


def test_export_prefix_crlf_and_symlink_survive(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    real = shared / ".env"
    real.write_bytes(b"APP_NAME=x\r\nexport REVERB_APP_ID=null\r\nLAST=1")
    link = tmp_path / ".env"
    link.symlink_to(real)
    assert cli("install", "--env-file", str(link)).code == 0
    assert link.is_symlink()
    data = real.read_bytes()
    assert data.startswith(b"APP_NAME=x\r\nexport REVERB_APP_ID=")
    assert b"\nLAST=1\r\n\r\nBROADCAST_CONNECTION=reverb\r\n" in data
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert re.fullmatch(r"\d{6}", env_of(real)["REVERB_APP_ID"] or "")
