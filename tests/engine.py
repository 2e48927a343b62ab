"""The engines of :mod:`awe.testing`, bound to this folder: graph modules come from here, ``sample_graphs`` by default.

:class:`InProcessEngine` (the ``engine`` fixture) runs everything in the test's event loop;
:class:`Engine` (``process_engine``, ``bare_engine``) starts real processes, for the tests that
kill, signal or restart them, or read what a process wrote.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import IO, Any

from awe import testing
from awe.testing import Proc, free_port

__all__ = ["TESTS_DIR", "Engine", "InProcessEngine", "Proc", "free_port", "start_awe_up"]

TESTS_DIR = Path(__file__).parent
SAMPLE_GRAPHS = ("sample_graphs",)


class Engine(testing.ProcessEngine):
    """A coordinator and workers as child processes started in this folder."""

    def __init__(
        self,
        folder: Path,
        *,
        graphs: tuple[str, ...] = SAMPLE_GRAPHS,
        heartbeat: float = 0.5,
        env: dict[str, str] | None = None,
    ) -> None:
        super().__init__(folder, cwd=TESTS_DIR, graphs=graphs, heartbeat=heartbeat, env=env)


class InProcessEngine(testing.InProcessEngine):
    """A coordinator and workers in the test's event loop, with graph modules from this folder."""

    def __init__(self, folder: Path, *, graphs: tuple[str, ...] = SAMPLE_GRAPHS, heartbeat: float = 0.5) -> None:
        super().__init__(folder, cwd=TESTS_DIR, graphs=graphs, heartbeat=heartbeat)


def start_awe_up(
    tmp_path: Path, *flags: str, stdout: int | IO[Any], env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    """``awe up`` started in this folder (see :func:`awe.testing.start_awe_up`)."""
    return testing.start_awe_up(tmp_path, *flags, cwd=TESTS_DIR, stdout=stdout, env=env)
