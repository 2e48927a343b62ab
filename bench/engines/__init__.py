"""The engines ``compare.py`` measures, one module each, all behind the same small interface.

Each module has one class with ``start(folder, pids)`` / ``stop()``, ``processes()`` (the pids
whose memory is the engine's), and one method per piece of work: ``chain`` (concurrent runs of a
10-node chain), ``chain3`` (one short run, to its result), ``fanout`` (one CPU fan-out run),
``start_waiting`` / ``finished_waiting`` (many runs that each wait 1 s) and, where it means
something, ``recovery``. ``compare.py`` times them all the same way, so that what differs between
two columns of its table is the engine, not the stopwatch.

A module is imported only in the cells that use its engine (each cell is a process of its own),
so that a peer's missing package (the ``bench`` extra) marks its column "not installed" instead
of stopping the comparison.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from engines.common import PidLog


class Engine(Protocol):
    """What ``compare.py`` asks of every engine; one cell uses one engine, in its own process."""

    name: str
    notes: list[str]
    """What the engine says about itself under the table (its version, how results were read)."""

    async def start(self, folder: Path, pids: PidLog) -> None:
        """Start on files in ``folder``, recording in ``pids`` every process started, so none outlives the cell."""

    async def stop(self) -> None:
        """Stop everything ``start`` started (by pid), even after a failed workload."""

    def processes(self) -> list[int]:
        """The pids whose memory is the engine's (their children count too): what many_waiting's RSS sums."""

    async def chain(self, runs: int, text_bytes: int) -> list[tuple[float, float]]:
        """``runs`` chain10 runs at once; each run's (submitted, finished) wall-clock times, final states checked."""

    async def chain3(self) -> None:
        """One 3-node run, returning when its final state is in this process: the latency workload times it."""

    async def fanout(self, iterations: int) -> None:
        """One run of 8 CPU branches and a join: the fan-out workload times it."""

    async def start_waiting(self, runs: int) -> None:
        """Hand over ``runs`` one-second waits the engine's natural way; return once all are handed over."""

    async def finished_waiting(self) -> int:
        """How many of those waits have finished: polled until all have, or the cap."""

    async def recovery(self, runs: int, cap: float) -> dict[str, Any]:
        """Only where a kill means something: see :mod:`engines.recovery` and ``AweEngine.recovery``."""
