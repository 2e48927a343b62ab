"""State survives the coordinator: a restart on the same database serves the same runs."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import pytest
from engine import Engine


async def test_finished_runs_read_the_same_after_a_coordinator_restart(bare_engine: Engine) -> None:
    engine = bare_engine
    await engine.start(workers=1)
    done = await engine.start_run("counter_loop", {"count": 0, "target": 3})
    failed = await engine.start_run("failing", {"payload": 1})
    before = {run_id: await engine.wait_finished(run_id) for run_id in (done, failed)}
    steps_before = {run_id: await engine.steps(run_id) for run_id in (done, failed)}
    events_before = await engine.ws_events(done)

    assert engine.coordinator is not None
    assert await engine.stop_process(engine.coordinator, signal.SIGTERM) == 0
    await engine.start_coordinator()

    for run_id, state in before.items():
        assert await engine.state(run_id) == state
        assert await engine.steps(run_id) == steps_before[run_id]
    assert await engine.ws_events(done) == events_before
    # the worker found the new coordinator by itself and new runs work
    await engine.wait_for_workers(1)
    again = await engine.start_run("counter_loop", {"count": 0, "target": 2})
    assert (await engine.wait_finished(again))["state"]["count"] == 2


async def test_state_survives_a_coordinator_killed_with_sigkill(bare_engine: Engine) -> None:
    engine = bare_engine
    await engine.start(workers=1)
    # A value past LARGE_CHARACTERS is kept in the values file beside the database: it survives too.
    run_id = await engine.start_run("counter_loop", {"count": 0, "target": 4, "document": "d" * 100_000})
    before = await engine.wait_finished(run_id)
    assert engine.coordinator is not None
    await engine.stop_process(engine.coordinator, signal.SIGKILL)
    await engine.start_coordinator()
    assert await engine.state(run_id) == before
    assert before["state"]["document"] == "d" * 100_000


async def test_sigterm_lets_the_job_in_flight_finish_and_the_next_coordinator_goes_on(
    bare_engine: Engine, tmp_path: Path
) -> None:
    engine = bare_engine
    await engine.start(workers=1)
    witness = tmp_path / "executions"
    run_id = await engine.start_run("witnessed", {"witness_file": str(witness), "seconds": 1.0})

    await engine.wait_until(lambda: _async(_lines(witness, "start")), what="the slow node to start")
    assert engine.coordinator is not None
    assert await engine.stop_process(engine.coordinator, signal.SIGTERM) == 0
    # The coordinator waited for the job and persisted its result before it exited.
    await engine.start_coordinator()
    steps = await engine.steps(run_id)
    assert [(s["node"], s["status"]) for s in steps][:1] == [("work", "completed")]
    final = await engine.wait_finished(run_id)
    assert final["status"] == "completed" and final["state"]["after"] is True
    assert len(_lines(witness, "start")) == 1  # the slow node ran once


def _lines(path: Path, what: str) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.startswith(what)] if path.exists() else []


@pytest.mark.parametrize("finishes", ["while the coordinator is down", "after it is back"])
async def test_a_job_out_when_the_coordinator_died_is_adopted_not_run_again(
    bare_engine: Engine, tmp_path: Path, finishes: str
) -> None:
    engine = bare_engine
    await engine.start(workers=2)
    witness = tmp_path / "executions"
    # Long enough that the kill lands while the node still runs, even on a busy machine.
    seconds = 1.5 if finishes == "while the coordinator is down" else 3.0
    run_id = await engine.start_run("witnessed", {"witness_file": str(witness), "seconds": seconds})
    await engine.wait_until(lambda: _async(_lines(witness, "start")), what="the slow node to start")
    assert engine.coordinator is not None
    await engine.stop_process(engine.coordinator, signal.SIGKILL)
    assert not _lines(witness, "end"), "the node finished before the coordinator died; the test needs it later"
    if finishes == "while the coordinator is down":
        await engine.wait_until(lambda: _async(_lines(witness, "end")), what="the node to finish")
    await engine.start_coordinator()
    final = await engine.wait_finished(run_id)
    assert final["status"] == "completed"
    starts = _lines(witness, "start")
    assert len(starts) == 1, starts  # its worker reported it (running, or its result) and the new coordinator kept it
    steps = await engine.steps(run_id)
    assert [(s["node"], s["attempt"], s["status"]) for s in steps] == [
        ("work", 1, "completed"),
        ("after", 1, "completed"),
    ]


async def _async(value: object) -> bool:
    return bool(value)


async def test_after_a_restart_queued_jobs_go_out_once_the_workers_present_before_are_back(tmp_path: Path) -> None:
    """No waiting out the grace (here a minute: heartbeats every 20 s) once every worker said Hello.

    The worker says Hello as soon as its connection comes back, not at its next heartbeat.
    """
    async with Engine(tmp_path, heartbeat=20.0) as engine:
        await engine.start(workers=1, capacity=1)
        witness = tmp_path / "executions"
        running = await engine.start_run("witnessed", {"witness_file": str(witness), "seconds": 1.5})
        await engine.wait_until(lambda: _async(_lines(witness, "start")), what="the slow node to start")
        queued = await engine.start_run("counter_loop", {"count": 0, "target": 2})  # waits for the only slot
        assert engine.coordinator is not None
        await engine.stop_process(engine.coordinator, signal.SIGKILL)
        await engine.start_coordinator()
        for run_id in (running, queued):
            assert (await engine.wait_finished(run_id, timeout=20))["status"] == "completed"
        assert len(_lines(witness, "start")) == 1  # the job in flight was adopted, not run again


async def test_a_run_whose_stored_plan_cannot_go_on_fails_and_the_coordinator_serves_the_rest(
    bare_engine: Engine,
) -> None:
    """A run recorded as running with nothing left to run (a database edited by hand, say)."""
    engine = bare_engine
    await engine.start(workers=1)
    broken = await engine.start_run("counter_loop", {"count": 0, "target": 2})
    await engine.wait_finished(broken)
    assert engine.coordinator is not None
    assert await engine.stop_process(engine.coordinator, signal.SIGTERM) == 0
    with sqlite3.connect(engine.db) as conn:
        conn.execute("UPDATE runs SET status = 'running', finished_at = NULL WHERE run_id = ?", (broken,))
    await engine.start_coordinator()
    final = await engine.wait_finished(broken)
    assert final["status"] == "failed" and final["error"]["type"] == "NotRecoverable", final
    await engine.wait_for_workers(1)
    again = await engine.start_run("counter_loop", {"count": 0, "target": 2})
    assert (await engine.wait_finished(again))["state"]["count"] == 2
