"""The harness in ``awe.testing``: what each engine leaves behind, and how it fails.

The other end-to-end tests rely on ``close()`` failing loudly on leftovers; these make sure it
does, and that a start that cannot succeed says why.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from engine import Engine, InProcessEngine

from awe.graph import GraphLoadError


async def test_an_in_process_engine_runs_a_graph_and_leaves_nothing_behind(tmp_path: Path) -> None:
    tasks_before = asyncio.all_tasks()
    sigterm_before = signal.getsignal(signal.SIGTERM)
    async with InProcessEngine(tmp_path) as engine:
        await engine.start(workers=2)
        run_id = await engine.start_run("counter_loop", {"count": 0, "target": 3})
        assert (await engine.wait_finished(run_id))["status"] == "completed"
        assert {s["worker_id"] for s in await engine.steps(run_id)} <= {"w1", "w2"}
        assert signal.getsignal(signal.SIGTERM) is sigterm_before  # the workers left the test's signals alone
        port = engine.http_port
        assert engine.coordinator is not None
        sockets = [engine.coordinator.coordinator.endpoint.socket, *(w.worker.endpoint.socket for w in engine.workers)]
        worker_tasks = [w.task for w in engine.workers]

    assert all(task.done() for task in worker_tasks)
    assert asyncio.all_tasks() == tasks_before
    assert all(s.closed for s in sockets)
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_closing_an_in_process_engine_fails_naming_a_task_left_running(tmp_path: Path) -> None:
    engine = await InProcessEngine(tmp_path).start(workers=1)
    stray = asyncio.create_task(asyncio.sleep(3600), name="stray-task")
    with pytest.raises(AssertionError, match="stray-task"):
        await engine.close()
    assert stray.cancelled()  # and it is stopped, not left to the next test


async def test_an_in_process_engine_with_a_graph_module_that_does_not_import_does_not_start(tmp_path: Path) -> None:
    async with InProcessEngine(tmp_path, graphs=("no_such_graphs",)) as engine:
        with pytest.raises(GraphLoadError, match="no_such_graphs"):
            await engine.start(workers=1)


async def test_a_coordinator_process_that_exits_at_start_fails_with_its_output(bare_engine: Engine) -> None:
    bare_engine.graphs = ("no_such_graphs",)
    with pytest.raises(AssertionError, match="cannot import graph module 'no_such_graphs'"):
        await bare_engine.start_coordinator()
