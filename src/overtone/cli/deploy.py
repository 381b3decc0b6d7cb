"""``overtone deploy supervisor|systemd|nginx``: ready-made production configuration.

Contract:

- Each target prints one configuration to stdout, or writes it to ``--output FILE``.
- Values come from the flags and from the ``.env`` file the server will read (``--env-file``;
  default ``APP_DIR/.env`` for Supervisor and systemd, ``./.env`` for nginx). Only the file is
  read, not this shell's environment: the configuration describes the server as it will run.
  The file is validated as ``overtone start`` validates it; a bad value is an error (exit 2).
- The start command is an absolute path that works without ``PATH``: the ``overtone`` console
  script next to the running Python (``sys.executable``; symlinks such as a virtualenv's are
  kept, not resolved), else ``python -m overtone``; ``--executable`` overrides it.
- Stop timeouts (``stopwaitsecs``, ``TimeoutStopSec``) exceed ``OVERTONE_SHUTDOWN_TIMEOUT`` by
  :data:`STOP_MARGIN` seconds, so the graceful drain (close code 4200) always finishes first.
- nginx: one ``server { }`` block for ``http { }`` (or, with ``--locations-only``, the
  ``location`` blocks to include in an existing server). The upstream defaults to
  ``REVERB_SERVER_HOST:REVERB_SERVER_PORT`` with a wildcard host replaced by loopback, over
  ``https`` when overtone serves TLS itself (``OVERTONE_TLS_CERT``).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shlex
import sys
from pathlib import Path

from overtone.cli import templates
from overtone.config import ConfigError, Settings, load_settings, read_environment

STOP_MARGIN = 10
"""Seconds added to the shutdown timeout for the process manager's stop timeout."""
DEFAULT_NOFILE = 65_535
MIN_READ_TIMEOUT = 120

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_NGINX_SAFE = re.compile(r"[^\s;{}'\"#]+")
_SYSTEMD_SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")
_NAME = re.compile(r"[A-Za-z0-9_.@-]+")


class DeployError(Exception):
    """A problem with the flags or the ``.env`` file; the message says which."""


def fill(template: str, **values: str) -> str:
    """``template`` with every ``{{name}}`` replaced; names must match ``values`` exactly."""
    wanted = set(_PLACEHOLDER.findall(template))
    if wanted != set(values):
        raise KeyError(f"template placeholders {sorted(wanted)} != values {sorted(values)}")
    return _PLACEHOLDER.sub(lambda match: values[match[1]], template)


def overtone_command(executable: str | None = None) -> list[str]:
    """The absolute argv that runs ``overtone start`` without relying on ``PATH``."""
    if executable:
        return [os.path.abspath(executable), "start"]
    python = os.path.abspath(sys.executable)
    script = os.path.join(os.path.dirname(python), "overtone")
    if os.path.isfile(script) and os.access(script, os.X_OK):
        return [script, "start"]
    return [python, "-m", "overtone", "start"]


def load_env_settings(env_file: str | None, default: Path, workers: int | None = None) -> Settings:
    """Validated settings from the ``.env`` file alone (defaults when the default is missing)."""
    path = Path(env_file) if env_file else default
    if env_file and not path.is_file():
        raise DeployError(f"--env-file: no such file: {path}")
    if not path.is_file():
        print(f"overtone deploy: note: {path} not found, using defaults", file=sys.stderr)
    try:
        values = read_environment({}, path) if path.is_file() else {}
        return load_settings(values, workers=workers)
    except ConfigError as exc:
        raise DeployError(f"configuration error in {path}: {exc}") from None


def _name(flag: str, value: str) -> str:
    if not _NAME.fullmatch(value):
        raise DeployError(f"{flag} {value!r}: use letters, digits, '_', '.', '@' and '-'")
    return value


def _stop_wait(settings: Settings) -> str:
    return str(math.ceil(settings.shutdown_timeout) + STOP_MARGIN)


def _start_argv(args: argparse.Namespace, app_dir: Path) -> list[str]:
    argv = overtone_command(args.executable)
    if args.env_file and Path(args.env_file).absolute() != app_dir / ".env":
        argv += ["--env-file", str(Path(args.env_file).absolute())]
    if args.workers:
        argv += ["--workers", str(args.workers)]
    return argv


def supervisor(args: argparse.Namespace) -> str:
    """The ``[program:NAME]`` section for Supervisor."""
    app_dir = Path(args.app_dir).absolute()
    settings = load_env_settings(args.env_file, app_dir / ".env", args.workers)
    start = shlex.join(_start_argv(args, app_dir))
    nofile = str(args.nofile)
    script = (
        f"ulimit -n {nofile} 2>/dev/null || {{ echo "
        f'"overtone: cannot raise the open-file limit to {nofile}, using $(ulimit -H -n): '
        f'set minfds={nofile} in [supervisord]" >&2 '
        f'&& ulimit -n "$(ulimit -H -n)"; }} && exec {start}'
    )
    command = shlex.join(["/bin/sh", "-c", script])
    if re.search(r"\s[;#]", command):
        raise DeployError("paths must not contain ' ;' or ' #' (Supervisor reads them as comments)")
    return fill(
        templates.SUPERVISOR,
        name=_name("--program-name", args.program_name),
        command=command.replace("%", "%%"),
        directory=str(app_dir).replace("%", "%%"),
        user=_name("--user", args.user),
        log=str(Path(args.log).absolute()).replace("%", "%%"),
        stop_wait=_stop_wait(settings),
        nofile=nofile,
        shutdown_timeout=f"{settings.shutdown_timeout:g}",
    )


def _systemd_quote(arg: str) -> str:
    escaped = arg.replace("%", "%%").replace("$", "$$")
    if _SYSTEMD_SAFE.fullmatch(escaped):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def systemd(args: argparse.Namespace) -> str:
    """A systemd service unit."""
    app_dir = Path(args.app_dir).absolute()
    settings = load_env_settings(args.env_file, app_dir / ".env", args.workers)
    if settings.workers > 1:
        reload = "ExecReload=/bin/kill -HUP $MAINPID"
    else:
        reload = (
            "# No ExecReload: a single process restarts with `systemctl restart`; with\n"
            "# --workers N, ExecReload=/bin/kill -HUP $MAINPID replaces workers one by one."
        )
    return fill(
        templates.SYSTEMD,
        name=_name("--name", args.name),
        user=_name("--user", args.user),
        directory=str(app_dir).replace("%", "%%"),
        exec_start=" ".join(_systemd_quote(a) for a in _start_argv(args, app_dir)),
        reload=reload,
        stop_wait=_stop_wait(settings),
        nofile=str(args.nofile),
        shutdown_timeout=f"{settings.shutdown_timeout:g}",
    )


def _upstream(settings: Settings, given: str | None) -> str:
    """``scheme://host:port`` of overtone: https when it serves TLS itself."""
    if given:
        return given if "://" in given else f"{settings.scheme}://{given}"
    host = settings.host
    if host in ("", "0.0.0.0", "*"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{settings.scheme}://{host}:{settings.port}"


def _nginx_value(flag: str, value: str) -> str:
    if not _NGINX_SAFE.fullmatch(value):
        raise DeployError(f"{flag} {value!r}: spaces, quotes, ';', '#', '{{' and '}}' not allowed")
    return value


def nginx(args: argparse.Namespace) -> str:
    """An nginx ``server`` block (or its ``location`` blocks) in front of overtone."""
    settings = load_env_settings(args.env_file, Path(".env"))
    upstream = _nginx_value("--upstream", _upstream(settings, args.upstream))
    activity = max(app.activity_timeout for app in settings.apps)
    keepalive = activity + settings.pong_timeout
    values = {
        "path": settings.path,
        "upstream": upstream,
        "activity": str(activity),
        "pong": f"{settings.pong_timeout:g}",
        "read_timeout": str(max(MIN_READ_TIMEOUT, math.ceil(2 * keepalive))),
        "max_request_size": str(settings.max_request_size),
        "body_limit": f"{math.ceil(settings.max_request_size / 1_048_576) + 1}m",
    }
    short = {"path": settings.path, "upstream": upstream}
    if args.locations_only and not settings.path:
        up = fill(templates.NGINX_UP_LEFT_OUT, **short)
    else:
        up = fill(templates.NGINX_UP, **short)
    if settings.http_fallback:
        fallback = fill(
            templates.NGINX_FALLBACK,
            fallback_path=settings.http_fallback_path,
            poll=f"{settings.http_poll_timeout:g}",
            **{k: values[k] for k in ("path", "upstream", "read_timeout", "body_limit")},
        )
    else:
        fallback = templates.NGINX_FALLBACK_OFF
    locations = fill(templates.NGINX_LOCATIONS, up=up, fallback=fallback, **values)
    if args.locations_only:
        return locations
    if (args.ssl_cert is None) != (args.ssl_key is None):
        raise DeployError("--ssl-cert and --ssl-key go together")
    tls = ""
    listen = _nginx_value("--listen", args.listen or ("443" if args.ssl_cert else "80"))
    if args.ssl_cert:
        cert = _nginx_value("--ssl-cert", str(Path(args.ssl_cert).absolute()))
        key = _nginx_value("--ssl-key", str(Path(args.ssl_key).absolute()))
        tls = fill(templates.NGINX_TLS, cert=cert, key=key)
        listen += " ssl"
    return fill(
        templates.NGINX_SERVER,
        listen=listen,
        server_name=_nginx_value("--server-name", args.server_name),
        tls=tls,
        locations=locations,
    )


_RENDER = {"supervisor": supervisor, "systemd": systemd, "nginx": nginx}


def run(args: argparse.Namespace) -> int:
    """Handle ``overtone deploy TARGET``; return the exit status."""
    try:
        text = _RENDER[args.target](args)
    except DeployError as exc:
        print(f"overtone deploy {args.target}: {exc}", file=sys.stderr)
        return 2
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            print(f"overtone deploy: cannot write {args.output}: {exc}", file=sys.stderr)
            return 2
        print(f"overtone deploy {args.target}: wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{number} must be at least 1")
    return number


def _common(parser: argparse.ArgumentParser, target: str, env_default: str) -> None:
    parser.add_argument("--env-file", help=f"the .env the server reads (default {env_default})")
    parser.add_argument("--output", "-o", help="write the configuration here instead of stdout")
    parser.set_defaults(handler=run, target=target)


def _process(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--app-dir", required=True, help="working directory (holds .env)")
    parser.add_argument("--user", required=True, help="system user the server runs as")
    parser.add_argument("--workers", type=_positive, help="worker processes (needs Redis if > 1)")
    parser.add_argument(
        "--nofile", type=_positive, default=DEFAULT_NOFILE, help="open-file limit (65535)"
    )
    parser.add_argument("--executable", help="overtone executable (default: this install's)")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``deploy supervisor|systemd|nginx`` to the ``overtone`` sub-commands."""
    deploy = commands.add_parser("deploy", help="print Supervisor, systemd or nginx configuration")
    targets = deploy.add_subparsers(dest="target", required=True, metavar="TARGET")
    program = targets.add_parser("supervisor", help="a Supervisor [program:...] section")
    _process(program)
    program.add_argument("--log", required=True, help="log file (stdout and stderr)")
    program.add_argument("--program-name", default="overtone", help="program name (overtone)")
    _common(program, "supervisor", "APP_DIR/.env")
    unit = targets.add_parser("systemd", help="a systemd service unit")
    _process(unit)
    unit.add_argument("--name", default="overtone", help="unit name (overtone)")
    _common(unit, "systemd", "APP_DIR/.env")
    proxy = targets.add_parser("nginx", help="an nginx server block proxying to overtone")
    proxy.add_argument("--server-name", required=True, help="public host name (server_name)")
    proxy.add_argument("--listen", help="port or address:port (443 with TLS, else 80)")
    proxy.add_argument(
        "--ssl-cert", help="certificate chain (PEM); omit when a load balancer terminates TLS"
    )
    proxy.add_argument("--ssl-key", help="private key (PEM)")
    proxy.add_argument("--upstream", help="overtone's address (from REVERB_SERVER_HOST/PORT)")
    proxy.add_argument(
        "--locations-only",
        action="store_true",
        help="only the location blocks, to include in an existing server block",
    )
    _common(proxy, "nginx", "./.env")
