"""The import rule of ARCHITECTURE.md, checked on the source: layers, no circles, no I/O in
the core."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).parents[2] / "src" / "overtone"

# The rooms of src/overtone: a package, or top-level modules that form one concept.
ROOMS = {
    "version": {"overtone"},
    "protocol": {"protocol"},
    "routing": {"routing"},
    "stats": {"stats"},
    "channels": {"channels"},
    "broadcast": {"broadcast"},
    "settings": {"apps", "apps_file", "envvars", "config"},
    "core": {
        "session",
        "hub_state",
        "hub_counts",
        "hub_authorization",
        "hub_streams",
        "hub_subscriptions",
        "hub",
        "node",
    },
    "cluster": {"cluster"},
    "http": {"http"},
    "transport": {"transport"},
    "ops": {"ops"},
    "dashboard": {"dashboard"},
    "doctor": {"doctor"},
    "server": {"server"},
    "cli": {"cli", "__main__"},
}
# The layers, bottom first. A module may import its own room and the rooms of strictly lower
# layers only, so two rooms of one layer never import each other.
LAYERS: list[set[str]] = [
    {"version", "protocol", "routing", "stats"},
    {"channels", "broadcast"},
    {"settings"},
    {"core"},
    {"cluster"},
    {"http", "transport"},
    {"ops", "dashboard", "doctor"},
    {"server"},
    {"cli"},
]
ROOM_OF = {top: name for name, tops in ROOMS.items() for top in tops}
LEVEL = {name: level for level, rooms in enumerate(LAYERS) for name in rooms}

PURE = [
    *sorted((SRC / "protocol").glob("*.py")),
    *sorted((SRC / "channels").glob("*.py")),
    *sorted((SRC / "http").glob("*.py")),
    SRC / "routing.py",
    SRC / "session.py",
    SRC / "hub.py",
    SRC / "hub_state.py",
    SRC / "hub_streams.py",
    SRC / "hub_counts.py",
    SRC / "hub_authorization.py",
    SRC / "hub_subscriptions.py",
    SRC / "node.py",
    SRC / "stats.py",
    SRC / "cluster" / "coordinator.py",
    SRC / "cluster" / "sync.py",
    SRC / "cluster" / "sequencer.py",
    SRC / "cluster" / "broker.py",
]
FORBIDDEN = {"asyncio", "socket", "selectors", "ssl", "time", "uvloop", "httpx", "redis"}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room(module: str) -> str:
    """``overtone.hub`` -> ``core``; ``overtone.transport.http1`` -> ``transport``."""
    parts = module.split(".")
    return ROOM_OF[parts[1] if len(parts) > 1 else parts[0]]


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports, ``TYPE_CHECKING`` blocks and functions included."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


MODULES = {module_name(path): path for path in sorted(SRC.rglob("*.py"))}


def internal(path: Path) -> set[str]:
    """The modules of overtone that ``path`` imports (``from pkg import mod`` included)."""
    return {name for name in imported(path) if name in MODULES and name != module_name(path)}


def test_every_module_has_a_room_and_every_room_a_layer() -> None:
    tops = {name.split(".")[1] if "." in name else name for name in MODULES}
    assert tops <= set(ROOM_OF), f"add {sorted(tops - set(ROOM_OF))} to ROOMS"
    assert set(ROOMS) == set(LEVEL), "every room in exactly one layer"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_downwards(name: str) -> None:
    own = LEVEL[room(name)]
    for other in internal(MODULES[name]):
        if room(other) == room(name):
            continue
        assert LEVEL[room(other)] < own, (
            f"{name} ({room(name)}, layer {own}) imports {other} "
            f"({room(other)}, layer {LEVEL[room(other)]})"
        )


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph``, or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> Iterator[list[str]]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                yield [*path[path.index(nxt) :], nxt]
            elif nxt not in state:
                yield from visit(nxt)
        path.pop()
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            for found in visit(start):
                return found
    return None


def test_no_module_imports_itself_through_others() -> None:
    # A package's __init__ that re-exports its modules is not a circle with them.
    graph = {
        name: {other for other in internal(path) if not name.startswith(other + ".")}
        for name, path in MODULES.items()
    }
    cycle = _cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(SRC)))
def test_the_core_does_no_io(path: Path) -> None:
    for name in imported(path):
        assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"


@pytest.mark.parametrize(
    ("lower", "upper"),
    [
        ("transport", "dashboard"),
        ("transport", "http"),
        ("transport", "ops"),
        ("channels", "settings"),
    ],
)
def test_the_rules_the_layers_exist_for(lower: str, upper: str) -> None:
    offenders = [
        name
        for name, path in MODULES.items()
        if room(name) == lower and any(room(other) == upper for other in internal(path))
    ]
    assert offenders == [], f"{lower} must not import {upper}: {offenders}"
