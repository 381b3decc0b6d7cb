"""``overtone restart``: graceful restart of the running server(s).

Locally, the PID file written by ``overtone start`` names the process (and says whether it
is a workers' supervisor): a supervisor gets SIGHUP (workers are replaced one at a time, the
port never stops accepting); a single server gets SIGTERM (it drains, every client gets 4200
and reconnects at once, and Supervisor or systemd starts it again, as ``reverb:restart``).
With scaling on,
``--cluster`` asks every node through Redis to drain and exit, one after the other.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import Any

import orjson
from redis.exceptions import RedisError

from overtone.cli.common import add_env_file, load
from overtone.cluster import redis_connect
from overtone.config import Scaling


def register(commands: Any) -> None:
    """Add ``restart`` to the sub-commands."""
    parser = commands.add_parser("restart", help="gracefully restart the running server(s)")
    add_env_file(parser)
    parser.add_argument("--pid-file", help="PID file of the server (OVERTONE_PID_FILE)")
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="restart every node of the cluster through Redis, one after the other",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Signal the local server, or every node; return the exit status."""
    settings = load(args, pid_file=args.pid_file)
    if settings is None:
        return 2
    if args.cluster:
        if settings.scaling is None:
            print("overtone: --cluster needs REVERB_SCALING_ENABLED=true", file=sys.stderr)
            return 2
        return asyncio.run(_publish_restart(settings.scaling))
    path = settings.pid_path()
    try:
        pid_text, _, kind = path.read_text().strip().partition(" ")
        pid = int(pid_text)
    except (OSError, ValueError):
        print(
            f"overtone: no running server found (no PID in {path}); "
            "set OVERTONE_PID_FILE or --pid-file as for 'overtone start'",
            file=sys.stderr,
        )
        return 1
    supervisor = kind == "workers"
    try:
        os.kill(pid, signal.SIGHUP if supervisor else signal.SIGTERM)
    except ProcessLookupError:
        print(f"overtone: process {pid} from {path} is not running", file=sys.stderr)
        return 1
    except PermissionError:
        print(f"overtone: not allowed to signal process {pid} (run as its user)", file=sys.stderr)
        return 1
    what = "rolling restart of the workers" if supervisor else "drain and restart"
    print(f"overtone: asked process {pid} for a {what}")
    return 0


async def _publish_restart(scaling: Scaling) -> int:
    envelope = orjson.dumps({"n": "overtone-restart", "m": [["", {"t": "restart"}]]})
    try:
        listeners = await redis_connect.publish_once(scaling, envelope)
    except (RedisError, OSError) as exc:
        where = redis_connect.describe(scaling)
        print(f"overtone: Redis at {where} is unreachable: {exc}", file=sys.stderr)
        return 1
    print(f"overtone: restart requested from {listeners} node(s); they drain one after the other")
    return 0
