"""What the benchmark scripts share: awe's harness (:mod:`awe.testing`) serving this folder's ``bench_graphs``."""

from __future__ import annotations

from pathlib import Path

from awe.testing import ProcessEngine, free_port, start_awe_up, timestamp

__all__ = ["HERE", "LocalEngine", "free_port", "start_awe_up", "timestamp"]

HERE = Path(__file__).parent


class LocalEngine(ProcessEngine):
    """A coordinator and ``workers`` worker processes on free loopback ports, with a fresh database.

    ``async with LocalEngine(folder, workers=2) as engine:`` waits until every worker has joined;
    leaving the block stops every process it started. Heartbeats are awe's default (1 s), as in
    a deployment.
    """

    def __init__(self, folder: Path, *, workers: int, capacity: int = 4, graphs: str = "bench_graphs") -> None:
        super().__init__(folder, cwd=HERE, graphs=(graphs,), heartbeat=1.0)
        self.worker_count, self.capacity = workers, capacity

    async def __aenter__(self) -> LocalEngine:
        await super().__aenter__()
        try:
            await self.start(self.worker_count, capacity=self.capacity)
        except BaseException:
            await self.close()
            raise
        return self
