"""Dask distributed: ``LocalCluster(n_workers=2, processes=True)`` on loopback, driven by an async ``Client``.

The scheduler runs in this process (LocalCluster's way), the 2 workers in processes of their
own (each under a nanny), with Dask's default of one thread each on this 2-core machine.
A run is a chain of futures, each task getting the previous task's state; nothing is written to
disk, so Dask's column is not durable. The tasks are :mod:`engines.celery_tasks`' plain twins
in :mod:`engines.dask_tasks`, imported by the workers from this folder.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

from engines import dask_tasks
from engines.common import BENCH, CHAIN_LENGTH, FAN_BRANCHES, PidLog, chain_state, check_chain


class DaskEngine:
    name = "dask"

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.cluster: Any = None
        self.client: Any = None
        self._waiting: list[Any] = []

    async def start(self, folder: Path, pids: PidLog) -> None:
        import distributed
        from distributed import Client, LocalCluster

        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BENCH), os.environ.get("PYTHONPATH")]))
        os.environ["DASK_TEMPORARY_DIRECTORY"] = str(folder)
        self.cluster = await LocalCluster(
            n_workers=2,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            asynchronous=True,
            silence_logs=logging.WARNING,
        )
        self.client = await Client(self.cluster, asynchronous=True)
        for pid in self.processes():
            pids.add(pid)
        threads = sum((await self.client.nthreads()).values())
        self.notes.append(f"distributed {distributed.__version__}, 2 worker processes, {threads} threads in all")

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.close()
        if self.cluster is not None:
            await self.cluster.close()

    def processes(self) -> list[int]:
        """This process (the scheduler and the client) and, as its children, the nannies and workers."""
        return [os.getpid()]

    def _chain(self, state: dict[str, Any], length: int) -> Any:
        """A run as futures: each task gets the previous one's future, so the scheduler orders them."""
        future: Any = state
        for i in range(length):
            future = self.client.submit(dask_tasks.step, future, f"n{i}", pure=False)
        return future

    async def _timed(self, submitted: float, future: Any) -> tuple[float, float]:
        """The run's end is the time its last task stamped, not when this client got round to reading it."""
        final = await future
        check_chain(final, CHAIN_LENGTH)
        return submitted, final["finished_at"]

    async def chain(self, runs: int, text_bytes: int) -> list[tuple[float, float]]:
        state = chain_state(text_bytes)  # each run's tasks carry their own copy, as every other engine's runs do
        runs_ = [(time.time(), self._chain(state, CHAIN_LENGTH)) for _ in range(runs)]
        return list(await asyncio.gather(*(self._timed(s, f) for s, f in runs_)))

    async def chain3(self) -> None:
        check_chain(await self._chain(chain_state(16), 3), 3)

    async def fanout(self, iterations: int) -> None:
        branches = [self.client.submit(dask_tasks.burn, iterations, pure=False) for _ in range(FAN_BRANCHES)]
        await self.client.submit(sum, branches, pure=False)

    async def start_waiting(self, runs: int) -> None:
        self._waiting = self.client.map(dask_tasks.sleep_one_second, range(runs), pure=False)

    async def finished_waiting(self) -> int:
        return sum(f.status == "finished" for f in self._waiting)
