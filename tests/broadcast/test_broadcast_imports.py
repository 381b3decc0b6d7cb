"""The package imports without any web framework or async HTTP client installed."""

from __future__ import annotations

import subprocess
import sys

from support.servers import scaled

SCRIPT = """
import sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"django", "flask", "starlette", "fastapi", "httpx", "httpx2"}:
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, Block())
import overtone.broadcast as broadcast
from overtone.broadcast import channels, endpoints, frontend

assert broadcast.Broadcaster.from_env({}).trigger("a", "b", 1) is None
try:
    broadcast.AsyncBroadcaster
except ModuleNotFoundError as error:
    print("lazy:", error)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {"django", "flask", "starlette"})
print("frameworks:", loaded)
"""


def test_importing_needs_no_framework() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=scaled(30),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "lazy: No module named 'httpx'" in result.stdout
    assert "frameworks: []" in result.stdout
