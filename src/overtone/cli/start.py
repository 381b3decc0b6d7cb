"""``overtone start``: the server (mirrors ``php artisan reverb:start``)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from typing import Any

from overtone.cli.common import add_env_file, load, run_async
from overtone.cli.logs import configure
from overtone.cli.workers import Supervisor, signal_ready
from overtone.cluster import redis_connect
from overtone.config import DEV_APP, Settings
from overtone.server import WORKER_ENV, serve

log = logging.getLogger("overtone")


def register(commands: Any) -> None:
    """Add ``start`` to the sub-commands."""
    start = commands.add_parser("start", help="start the server (like reverb:start)")
    start.add_argument("--host", help="interface to bind (REVERB_SERVER_HOST, default 0.0.0.0)")
    start.add_argument("--port", type=int, help="port to bind (REVERB_SERVER_PORT, default 8080)")
    start.add_argument("--path", help="path prefix for every route (REVERB_SERVER_PATH)")
    start.add_argument(
        "--hostname", help="public host name clients use, shown in the startup summary"
    )
    start.add_argument("--debug", action="store_true", default=None, help="log every frame")
    add_env_file(start)
    start.add_argument(
        "--workers",
        type=int,
        help="processes sharing the port (OVERTONE_WORKERS, default 1; needs Redis when > 1)",
    )
    start.set_defaults(handler=run)


def summary(settings: Settings) -> str:
    """The configuration in one line, without secrets."""
    apps = ", ".join(f"{a.id} (key {a.key})" for a in settings.apps)
    public = f"; public host name: {settings.hostname}" if settings.hostname else ""
    tls = "; TLS on" if settings.tls_cert else ""
    return (
        f"apps: {apps}{public}; path prefix: {settings.path or '(none)'}; "
        f"max request size: {settings.max_request_size} bytes{tls}"
    )


def run(args: argparse.Namespace) -> int:
    """Start the server (or the workers' supervisor); return the exit status."""
    settings = load(
        args,
        host=args.host,
        port=args.port,
        path=args.path,
        hostname=args.hostname,
        debug=args.debug,
        workers=args.workers,
    )
    if settings is None:
        return 2
    configure(settings.debug, settings.log_format)
    if settings.scaling is not None:
        log.info(
            "scaling on: Redis %s, channel %s",
            redis_connect.describe(settings.scaling),
            settings.scaling.broker_channel,
        )
    if settings.using_dev_app:
        log.warning(
            "no app configured: serving the development app id=%s key=%s secret=%s "
            "(set REVERB_APP_ID, REVERB_APP_KEY, REVERB_APP_SECRET for real use)",
            DEV_APP.id,
            DEV_APP.key,
            DEV_APP.secret,
        )
    if settings.workers > 1 and WORKER_ENV not in os.environ:
        log.info("starting %d workers on port %d", settings.workers, settings.port)
        supervisor = Supervisor(settings.workers, sys.argv[1:], settings.shutdown_timeout)
        pid_path = settings.pid_path()
        with contextlib.suppress(OSError):
            pid_path.write_text(f"{os.getpid()} workers\n")
        try:
            return run_async(supervisor.run())
        finally:
            with contextlib.suppress(OSError):
                pid_path.unlink()
    log.info(summary(settings))
    return run_async(serve(settings, on_ready=lambda _: signal_ready()))
