"""The recovery workload for engines that live in the application's process (LangGraph's checkpointer, DBOS).

For them "the coordinator" is the application itself, so that is what gets killed: a child
process (``compare.py --recovery-phase ENGINE``) starts the runs on a fresh SQLite file; once a
quarter of their steps are recorded it is SIGKILLed, and this process opens the same file and
resumes what the engine recorded, the engine's own way. Measured from the kill, like awe's: every
run that was unfinished having a newer step (or having finished), and every run finished. Runs
the engine had not recorded at all when the process died cannot be resumed; they are counted as
lost.

An engine taking part has ``launch_recovery_runs(runs)`` (in the child), ``recovery_progress()``
(``{run_id: (steps recorded, finished)}``, read from its file) and ``resume(runs)`` (after the
restart, in this process).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from engines.common import BENCH, CHAIN_LENGTH, PidLog, spawn

PHASE_LIMIT = 600.0
"""The child stops by itself after this long, should nothing kill it."""


async def phase_a(engine: Any, folder: Path, runs: int) -> None:
    """In the child: start the engine on ``folder`` and ``runs`` runs, then keep them going until killed."""
    await engine.start(folder, PidLog(folder / "pids"))
    await engine.launch_recovery_runs(runs)
    (folder / "submitted").touch()
    await asyncio.sleep(PHASE_LIMIT)


async def in_process_recovery(engine: Any, folder: Path, pids: PidLog, runs: int, cap: float) -> dict[str, Any]:
    """Kill the application mid-flight and restart it here; seconds from the kill until the runs move and finish."""
    await engine.stop()
    folder = folder / "recovery"
    folder.mkdir()
    argv = [sys.executable, str(BENCH / "compare.py"), "--recovery-phase", engine.name, "--folder", str(folder)]
    child = spawn([*argv, "--runs", str(runs)], folder / "phase-a.out", pids, cwd=BENCH)
    deadline = time.monotonic() + cap
    while not _in_flight(engine.recovery_progress(folder), folder, runs):
        if child.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the first process exited with {child.returncode} or stalled; see {folder}")
        await asyncio.sleep(0.01)
    killed = time.monotonic()
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    before = engine.recovery_progress(folder)
    await engine.start(folder, pids)
    await engine.resume(runs)
    resumed = time.monotonic() - killed
    moving, done = await _watch(engine, folder, before, killed, cap)
    unfinished = [run_id for run_id, (_, finished) in before.items() if not finished]
    return {
        "runs": runs,
        "unfinished_at_kill": len(unfinished),
        "lost_at_kill": runs - len(before),
        "kill_to_resumed_s": round(resumed, 3),
        "kill_to_all_moving_s": moving,
        "kill_to_all_done_s": done,
    }


def _in_flight(progress: dict[str, tuple[int, bool]], folder: Path, runs: int) -> bool:
    """Whether to kill now: every run handed to the engine and recorded by it, and a quarter of the steps done.

    Killing while the child is still handing runs over would count runs the application never
    submitted as lost; awe's runs, likewise, are all accepted before its coordinator is killed.
    """
    submitted = (folder / "submitted").exists() and len(progress) == runs
    return submitted and sum(steps for steps, _ in progress.values()) >= runs * CHAIN_LENGTH // 4


async def _watch(
    engine: Any, folder: Path, before: dict[str, tuple[int, bool]], killed: float, cap: float
) -> tuple[float | None, float | None]:
    """Seconds from the kill until every recorded run moved past its step at the kill, and until all finished."""
    moving = done = None
    while time.monotonic() < killed + cap and done is None:
        now = engine.recovery_progress(folder)
        elapsed = round(time.monotonic() - killed, 3)
        if moving is None and all(
            finished or now.get(run_id, (0, False))[0] > steps or now.get(run_id, (0, False))[1]
            for run_id, (steps, finished) in before.items()
        ):
            moving = elapsed
        if all(now.get(run_id, (0, False))[1] for run_id in before):
            done = elapsed
        await asyncio.sleep(0.02)
    return moving, done
