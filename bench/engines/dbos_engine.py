"""DBOS Transact in this process, with its SQLite system database: every step's output is recorded before the next.

A run is a workflow and a node is a step: the workflow keeps the state and each step returns
its update, as an awe node returns a delta (a step's output is what DBOS records; a
workflow's input and result are recorded too). The fan-out gathers 8 async steps that each run
the CPU work in a thread: DBOS runs in one process, so they share one core. Steps are async
throughout, DBOS's way for an asyncio program.

Importing this module registers the workflows with DBOS; ``start`` configures and launches it.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from dbos import DBOS, SetWorkflowID

from engines.common import CHAIN_LENGTH, FAN_BRANCHES, PidLog, chain_state, check_chain, read_sqlite, step_update
from engines.recovery import in_process_recovery


@DBOS.step()
async def chain_node(state: dict[str, Any], name: str) -> dict[str, Any]:
    return step_update(state, name)


@DBOS.workflow()
async def chain_workflow(state: dict[str, Any], length: int) -> dict[str, Any]:
    for i in range(length):
        state = {**state, **await chain_node(state, f"n{i}")}
    return state


@DBOS.step()
async def fan_branch(iterations: int) -> int:
    from bench_graphs import burn

    return await asyncio.to_thread(burn, iterations)


@DBOS.workflow()
async def fan_workflow(iterations: int) -> int:
    values = await asyncio.gather(*(fan_branch(iterations) for _ in range(FAN_BRANCHES)))
    return sum(values)


@DBOS.step()
async def wait_step() -> bool:
    await asyncio.sleep(1.0)
    return True


@DBOS.workflow()
async def wait_workflow() -> bool:
    return await wait_step()


def configure(folder: Path) -> None:
    """DBOS on ``folder``'s SQLite file, without its admin server (no port of its own), logging warnings only."""
    DBOS(
        config={
            "name": "awe-bench",
            "system_database_url": f"sqlite:///{folder / 'dbos.sqlite'}",
            "run_admin_server": False,
            "log_level": "WARNING",
        }
    )


class DbosEngine:
    name = "dbos"

    def __init__(self) -> None:
        self.notes: list[str] = []
        self._waiting: list[asyncio.Task[Any]] = []
        self._launched = False

    async def start(self, folder: Path, pids: PidLog) -> None:
        """Configure and launch DBOS; on a file with pending workflows, launching is what recovers them."""
        from importlib.metadata import version

        self.folder, self.pids = folder, pids
        configure(folder)
        DBOS.launch()
        self._launched = True
        self.notes[:] = [f"dbos {version('dbos')}"]

    async def stop(self) -> None:
        for task in self._waiting:
            task.cancel()
        await asyncio.gather(*self._waiting, return_exceptions=True)
        if self._launched:
            DBOS.destroy()
            self._launched = False

    def processes(self) -> list[int]:
        """This process: DBOS is a library in it (so the figure includes the benchmark's own few MB)."""
        return [os.getpid()]

    async def _timed(self, state: dict[str, Any]) -> tuple[float, float]:
        submitted = time.time()
        check_chain(await chain_workflow(state, CHAIN_LENGTH), CHAIN_LENGTH)
        return submitted, time.time()

    async def chain(self, runs: int, text_bytes: int) -> list[tuple[float, float]]:
        state = chain_state(text_bytes)
        return list(await asyncio.gather(*(self._timed(state) for _ in range(runs))))

    async def chain3(self) -> None:
        check_chain(await chain_workflow(chain_state(16), 3), 3)

    async def fanout(self, iterations: int) -> None:
        await fan_workflow(iterations)

    async def start_waiting(self, runs: int) -> None:
        self._waiting = [asyncio.create_task(wait_workflow()) for _ in range(runs)]

    async def finished_waiting(self) -> int:
        return sum(t.done() and not t.cancelled() and t.exception() is None for t in self._waiting)

    # -- recovery ------------------------------------------------------------------------

    async def recovery(self, runs: int, cap: float) -> dict[str, Any]:
        return await in_process_recovery(self, self.folder, self.pids, runs, cap)

    async def launch_recovery_runs(self, runs: int) -> None:
        """Each workflow under a known id, all started at once (as awe's runs are all submitted at once).

        ``start_workflow_async`` returns once DBOS has recorded the workflow; started one after
        another, most would be finished before the last one was even recorded.
        """
        state = chain_state(1024)

        async def one(i: int) -> None:
            with SetWorkflowID(f"rec-{i:05d}"):
                await DBOS.start_workflow_async(chain_workflow, state, CHAIN_LENGTH)

        await asyncio.gather(*(one(i) for i in range(runs)))

    def recovery_progress(self, folder: Path) -> dict[str, tuple[int, bool]]:
        """Per workflow: steps recorded, and whether it succeeded."""
        found = read_sqlite(
            folder / "dbos.sqlite",
            "SELECT workflow_uuid, status FROM workflow_status WHERE workflow_uuid LIKE 'rec-%'",
            "SELECT workflow_uuid, COUNT(*) FROM operation_outputs WHERE workflow_uuid LIKE 'rec-%' GROUP BY 1",
        )
        if found is None:
            return {}
        status, steps = dict(found[0]), dict(found[1])
        return {wid: (steps.get(wid, 0), s == "SUCCESS") for wid, s in status.items()}

    async def resume(self, runs: int) -> None:
        """Nothing to do: ``DBOS.launch()`` (in ``start``) recovers every pending workflow by itself."""
