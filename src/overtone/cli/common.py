"""What every command shares: the ``--env-file`` option, loading settings, the event loop."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Coroutine
from typing import Any

from overtone.config import ConfigError, Settings, load_settings, read_environment


def add_env_file(parser: argparse.ArgumentParser) -> None:
    """The ``--env-file`` option."""
    parser.add_argument("--env-file", help="read variables from this file instead of ./.env")


def load(args: argparse.Namespace, **overrides: Any) -> Settings | None:
    """Settings from the environment and ``.env``; prints the error and returns ``None``."""
    try:
        environ = read_environment(os.environ, args.env_file)
        return load_settings(environ, **overrides)
    except ConfigError as exc:
        print(f"overtone: configuration error: {exc}", file=sys.stderr)
        return None


def run_async(main: Coroutine[Any, Any, int]) -> int:
    """Run ``main`` on uvloop when installed, else asyncio."""
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up, used when installed
    except ImportError:
        return asyncio.run(main)
    return int(uvloop.run(main))
