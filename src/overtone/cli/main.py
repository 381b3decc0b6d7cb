"""``overtone``: the command line (``start`` mirrors ``php artisan reverb:start``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from overtone import __version__
from overtone.cli.workers import WORKER_ENV, Supervisor, signal_ready
from overtone.config import DEV_APP, ConfigError, Settings, load_settings, read_environment
from overtone.transport.server import serve

log = logging.getLogger("overtone")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="overtone", description=__doc__)
    parser.add_argument("--version", action="version", version=f"overtone {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start the server (like reverb:start)")
    start.add_argument("--host", help="interface to bind (REVERB_SERVER_HOST, default 0.0.0.0)")
    start.add_argument("--port", type=int, help="port to bind (REVERB_SERVER_PORT, default 8080)")
    start.add_argument("--path", help="path prefix for every route (REVERB_SERVER_PATH)")
    start.add_argument(
        "--hostname", help="public host name clients use, shown in the startup summary"
    )
    start.add_argument("--debug", action="store_true", default=None, help="log every frame")
    start.add_argument("--env-file", help="read variables from this file instead of ./.env")
    start.add_argument(
        "--workers",
        type=int,
        help="processes sharing the port (OVERTONE_WORKERS, default 1; needs Redis when > 1)",
    )
    return parser


def _summary(settings: Settings) -> str:
    apps = ", ".join(f"{a.id} (key {a.key})" for a in settings.apps)
    public = f"; public host name: {settings.hostname}" if settings.hostname else ""
    return (
        f"apps: {apps}{public}; path prefix: {settings.path or '(none)'}; "
        f"max request size: {settings.max_request_size} bytes"
    )


def _start(args: argparse.Namespace) -> int:
    try:
        environ = read_environment(os.environ, args.env_file)
        settings = load_settings(
            environ,
            host=args.host,
            port=args.port,
            path=args.path,
            hostname=args.hostname,
            debug=args.debug,
            workers=args.workers,
        )
    except ConfigError as exc:
        print(f"overtone: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.DEBUG if settings.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if settings.scaling is not None:
        log.info(
            "scaling on: Redis %s, channel %s",
            settings.scaling.redacted_url(),
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
        return _run(supervisor.run())
    log.info(_summary(settings))
    return _run(serve(settings, on_ready=lambda _: signal_ready()))


def _run(main: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up, used when installed
    except ImportError:
        return asyncio.run(main)
    return int(uvloop.run(main))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit status."""
    args = _parser().parse_args(argv)
    if args.command == "start":
        return _start(args)
    return 2
