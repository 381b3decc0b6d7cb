"""A checklist: one line per check, a fix hint under each failure."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Status(Enum):
    """How a check ended."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


MARKS = {Status.OK: "[ok]  ", Status.WARN: "[warn]", Status.FAIL: "[FAIL]", Status.SKIP: "[skip]"}


@dataclass(frozen=True, slots=True)
class Check:
    """The outcome of one check."""

    name: str
    status: Status
    detail: str = ""
    hint: str = ""


def render(checks: list[Check]) -> str:
    """The checklist as text."""
    lines = []
    for check in checks:
        detail = f": {check.detail}" if check.detail else ""
        lines.append(f"{MARKS[check.status]} {check.name}{detail}")
        if check.hint and check.status in (Status.FAIL, Status.WARN):
            lines.extend(f"         fix: {line}" for line in check.hint.splitlines())
    failed = sum(c.status is Status.FAIL for c in checks)
    warned = sum(c.status is Status.WARN for c in checks)
    lines.append(f"{len(checks)} checks: {failed} failed, {warned} warnings")
    return "\n".join(lines)


def failed(checks: list[Check]) -> bool:
    """Whether any check failed."""
    return any(c.status is Status.FAIL for c in checks)
