"""The import rule of ARCHITECTURE.md, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parents[2] / "src" / "overtone"
PURE = [
    *sorted((SRC / "protocol").glob("*.py")),
    *sorted((SRC / "channels").glob("*.py")),
    *sorted((SRC / "http").glob("*.py")),
    SRC / "session.py",
    SRC / "hub.py",
    SRC / "hub_state.py",
    SRC / "hub_streams.py",
    SRC / "node.py",
    SRC / "stats.py",
    SRC / "cluster" / "coordinator.py",
    SRC / "cluster" / "sync.py",
    SRC / "cluster" / "sequencer.py",
    SRC / "cluster" / "broker.py",
]
FORBIDDEN = {"asyncio", "socket", "selectors", "ssl", "time", "uvloop", "httpx", "redis"}
UPPER = (
    "overtone.transport",
    "overtone.cli",
    "overtone.cluster.redis_broker",
    "overtone.cluster.redis_streams",
)


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(SRC)))
def test_the_core_does_no_io_and_imports_nothing_above_it(path: Path) -> None:
    for name in imported(path):
        assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"
        assert not name.startswith(UPPER), f"{path.name} imports {name}"
