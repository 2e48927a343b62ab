"""The packages stay layered: nothing below the process wiring imports it, and the pure parts stay pure.

``awe/cli`` assembles processes from the layers; the HTTP layer sits on the coordinator. If a lower
package imported either, a change to the command line or the API could break the engine's core,
and the core could no longer be started in-process (by tests, benchmarks, or another front end).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import awe

PACKAGE = Path(awe.__file__).parent
LOWER_LAYERS = ["coordinator", "workers", "transport", "store", "graph"]
ABOVE = ("awe.http", "awe.cli", "awe.up")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", LOWER_LAYERS)
def test_no_lower_package_imports_the_http_layer_or_the_command_line(layer: str) -> None:
    offenders = {
        f"{path.relative_to(PACKAGE.parent)} imports {name}"
        for path in (PACKAGE / layer).rglob("*.py")
        for name in _imports(path)
        if name.startswith(ABOVE)
    }
    assert not offenders, sorted(offenders)


def test_the_transport_knows_nothing_of_graphs_runs_or_storage() -> None:
    offenders = {
        f"{path.name} imports {name}"
        for path in (PACKAGE / "transport").rglob("*.py")
        for name in _imports(path)
        if name.startswith("awe.") and not name.startswith("awe.transport")
    }
    assert not offenders, sorted(offenders)


@pytest.mark.parametrize(
    "module", ["awe.coordinator.run_machine", "awe.coordinator.rejoin", "awe.jsondata", "awe.settings", "awe.graph"]
)
def test_pure_modules_import_neither_zeromq_nor_sqlite(module: str) -> None:
    check = (
        f"import {module}, sys; "
        "loaded = [m for m in ('zmq', 'aiosqlite', 'aiohttp') if m in sys.modules]; "
        "assert not loaded, loaded"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
