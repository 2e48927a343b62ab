"""State survives the coordinator: a restart on the same database serves the same runs."""

from __future__ import annotations

import signal

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
    run_id = await engine.start_run("counter_loop", {"count": 0, "target": 4})
    before = await engine.wait_finished(run_id)
    assert engine.coordinator is not None
    await engine.stop_process(engine.coordinator, signal.SIGKILL)
    await engine.start_coordinator()
    assert await engine.state(run_id) == before
