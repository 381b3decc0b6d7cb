"""``overtone``: the command line. Each command lives in its own module with ``register``."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from overtone import __version__
from overtone.cli import deploy, doctor, install, restart, start, top


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="overtone", description="A Pusher-protocol realtime server, drop-in for Reverb."
    )
    parser.add_argument("--version", action="version", version=f"overtone {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for module in (start, restart, doctor, install, deploy, top):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit status."""
    args = _parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)
