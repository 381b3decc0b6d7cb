"""Install without the source tree: build the wheel, install it into a clean virtual
environment outside the checkout as docs/deploy.md does (``pip install -c constraints.txt
overtone-*.whl[redis]``, the versions CI tested), and run ``install``, ``start``, ``doctor``
and ``deploy`` from there, as a server would.

pip fetches the dependencies (and the build backend) from PyPI, or from its cache.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.servers import free_port, scaled

pytestmark = pytest.mark.wheel

ROOT = Path(__file__).resolve().parents[2]
# What the wheel is built from: no caches, no egg-info, no stale build directory.
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "src")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")


@dataclass
class Installed:
    """A virtual environment holding overtone from the wheel, and a directory to run it in."""

    venv: Path
    wheel: Path
    workdir: Path
    env: dict[str, str]
    timings: dict[str, float]

    @property
    def overtone(self) -> Path:
        return self.venv / "bin" / "overtone"

    def run(self, *args: str, step: str, **env: str) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        done = subprocess.run(
            [str(self.overtone), *args],
            cwd=self.workdir,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=scaled(60),
            check=False,
        )
        self.timings[step] = time.monotonic() - started
        assert "Traceback" not in done.stderr, done.stderr
        return done


def _run_together(
    timings: dict[str, float], steps: dict[str, list[str]], cwd: Path, env: dict[str, str]
) -> None:
    """Run independent ``steps`` at the same time; each must succeed without pip's warning
    about an unknown extra."""
    started = time.monotonic()
    running = {
        step: subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for step, argv in steps.items()
    }
    for step, process in running.items():
        out, err = process.communicate(timeout=scaled(300))
        timings[step] = time.monotonic() - started
        assert process.returncode == 0, f"{' '.join(steps[step])}\n{out}\n{err}"
        assert "does not provide the extra" not in err, err


def _clean_env() -> dict[str, str]:
    """This process's environment without anything that points at the checkout or its venv."""
    drop = ("REVERB_", "OVERTONE_", "PYTHON", "VIRTUAL_ENV", "BROADCAST_", "REDIS_", "APP_ENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(ROOT))
    )
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("wheel")
    assert not base.is_relative_to(ROOT)
    env = _clean_env()
    timings: dict[str, float] = {}
    source = base / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=IGNORED)
        else:
            shutil.copy2(ROOT / name, source / name)
    dist, venv = base / "dist", base / "venv"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)]
    create = [sys.executable, "-m", "venv", str(venv)]
    _run_together(timings, {"build wheel": build, "create venv": create}, base, env)
    [wheel] = dist.glob("overtone-*.whl")
    constraints = ROOT / "constraints.txt"
    install = [
        str(venv / "bin" / "pip"),
        "install",
        "-q",
        "-c",
        str(constraints),
        f"{wheel}[redis]",
    ]
    _run_together(timings, {"pip install wheel[redis]": install}, base, env)
    workdir = base / "app"
    workdir.mkdir()
    yield Installed(venv, wheel, workdir, env, timings)
    print("\nwheel install timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))


def pins(text: str) -> dict[str, str]:
    """``name -> version`` of the ``name==version`` lines of a requirements text."""
    found = {}
    for line in text.splitlines():
        name, sep, version = line.split(";")[0].strip().partition("==")
        if sep and not name.startswith("#"):
            found[name.lower().replace("_", "-")] = version.strip()
    return found


def test_the_wheel_installs_the_versions_ci_tested(installed: Installed) -> None:
    frozen = subprocess.run(
        [str(installed.venv / "bin" / "python"), "-m", "pip", "freeze"],
        env=installed.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    tested, present = pins((ROOT / "constraints.txt").read_text()), pins(frozen)
    assert {"redis", "httptools", "orjson", "uvloop", "websockets"} <= set(tested)
    differ = {name: (v, present.get(name)) for name, v in tested.items() if name in present}
    assert all(a == b for a, b in differ.values()), differ
    assert set(present) - {"overtone"} <= set(tested), set(present) - set(tested)


def test_the_wheel_carries_its_data_files(installed: Installed) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    assert "overtone/py.typed" in names
    assert "overtone/static/recovery.js" in names
    for page in ("index.html", "dashboard.js", "dashboard.css"):
        assert f"overtone/static/dashboard/{page}" in names
    assert "overtone/cli/templates/__init__.py" in names
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(installed.wheel).read(metadata).decode()
    assert "Provides-Extra: redis" in text
    where = subprocess.run(
        [str(installed.venv / "bin" / "python"), "-c", "import overtone; print(overtone.__file__)"],
        cwd=installed.workdir,
        env=installed.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(installed.venv), where


def test_install_start_doctor_and_stop_from_the_venv(installed: Installed) -> None:
    env_file = installed.workdir / ".env"
    env_file.write_text("APP_NAME=clinic\n")
    done = installed.run("install", "--host", "ws.example.com", step="overtone install")
    assert done.returncode == 0, done.stderr
    written = env_file.read_text()
    assert written.startswith("APP_NAME=clinic\n")
    for name in ("REVERB_APP_ID", "REVERB_APP_KEY", "REVERB_APP_SECRET", "REVERB_HOST"):
        assert f"\n{name}=" in written, written
    assert 'REVERB_HOST="ws.example.com"' in written

    port = free_port()
    bind = {"REVERB_SERVER_HOST": "127.0.0.1", "REVERB_SERVER_PORT": str(port)}
    log_path = installed.workdir / "overtone.log"
    started = time.monotonic()
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [str(installed.overtone), "start"],
            cwd=installed.workdir,
            env={
                **installed.env,
                **bind,
                "OVERTONE_PID_FILE": str(installed.workdir / "overtone.pid"),
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + scaled(20)
        while True:
            assert server.poll() is None, log_path.read_text()
            try:
                with urllib.request.urlopen(f"{base}/up", timeout=1) as answer:
                    assert answer.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
        installed.timings["overtone start until /up"] = time.monotonic() - started
        with urllib.request.urlopen(f"{base}/overtone/recovery.js", timeout=5) as answer:
            assert answer.status == 200  # package data, read from the installed package
            assert len(answer.read()) > 1000

        doctor = installed.run("doctor", "--timeout", "3", step="overtone doctor", **bind)
        assert doctor.returncode in (0, 1), doctor.stderr
        assert "[ok]   configuration" in doctor.stdout, doctor.stdout
        assert f"[ok]   local server: answering on 127.0.0.1:{port}" in doctor.stdout
        assert " checks: " in doctor.stdout.splitlines()[-1]
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            status = server.wait(scaled(20))
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    assert status == 0, log_path.read_text()
    assert "Traceback" not in log_path.read_text()


@pytest.mark.parametrize(
    ("target", "args"),
    [
        ("supervisor", ("--user", "www-data", "--log", "/var/log/overtone.log")),
        ("systemd", ("--user", "www-data")),
        ("nginx", ("--server-name", "ws.example.com")),
    ],
)
def test_deploy_from_the_venv(installed: Installed, target: str, args: tuple[str, ...]) -> None:
    app_dir = ("--app-dir", str(installed.workdir)) if target != "nginx" else ()
    done = installed.run("deploy", target, *app_dir, *args, step=f"overtone deploy {target}")
    assert done.returncode == 0, done.stderr
    if target == "nginx":
        assert "server_name ws.example.com;" in done.stdout
        assert "proxy_set_header Upgrade $http_upgrade;" in done.stdout
    else:
        assert f"{installed.overtone} start" in done.stdout, done.stdout
        assert str(ROOT) not in done.stdout
