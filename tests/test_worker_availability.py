"""Runs wait for workers: none connected yet, or all of them gone, and finish once one connects."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from engine import Engine, InProcessEngine


async def test_runs_queued_before_any_worker_are_picked_up_by_a_worker_started_later(tmp_path: Path) -> None:
    async with InProcessEngine(tmp_path) as engine:
        await engine.start_coordinator()
        run_ids = [await engine.start_run("counter_loop", {"count": 0, "target": 2}) for _ in range(5)]
        await asyncio.sleep(1.0)  # nothing can happen: there is no worker
        for run_id in run_ids:
            state = await engine.state(run_id)
            assert state["status"] == "queued" and state["step_count"] == 0
        engine.start_worker()
        for run_id in run_ids:
            final = await engine.wait_finished(run_id)
            assert final["status"] == "completed" and final["state"]["count"] == 2


async def test_with_every_worker_gone_runs_wait_and_finish_when_a_worker_connects(bare_engine: Engine) -> None:
    engine = bare_engine
    await engine.start(workers=1)
    run_ids = [await engine.start_run("slow_pair", {"delay": 0.3}) for _ in range(6)]

    async def under_way() -> bool:
        return (await engine.workers_info())[0]["in_flight"] > 0

    await engine.wait_until(under_way, what="the worker to take jobs")
    await engine.stop_process(engine.workers[0], signal.SIGKILL)

    async def worker_dropped() -> bool:
        return not await engine.workers_info()

    await engine.wait_until(worker_dropped, what="the coordinator to declare the worker lost")
    await asyncio.sleep(1.0)  # no worker: the runs must stay where they are
    for run_id in run_ids:
        assert (await engine.state(run_id))["status"] in ("queued", "running")

    engine.start_worker(worker_id="replacement")
    lost = 0
    for run_id in run_ids:
        final = await engine.wait_finished(run_id)
        assert final["status"] == "completed", final
        assert final["state"]["b_worker"] == "replacement"
        steps = await engine.steps(run_id)
        assert [(s["step"], s["node"]) for s in steps if s["status"] == "completed"] == [(1, "wait_a"), (2, "wait_b")]
        lost += sum(s["status"] == "lost" for s in steps)
    assert lost >= 1  # the killed worker's jobs were recorded as lost and run again
