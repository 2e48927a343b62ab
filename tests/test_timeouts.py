"""Per-node timeouts: an async node is cancelled, a sync node's stuck thread holds its slot, not the pool."""

from __future__ import annotations

from pathlib import Path

from engine import Engine, InProcessEngine, Proc

from awe.exit_codes import EXIT_STUCK


async def test_a_node_past_its_timeout_is_retried_then_fails(engine: InProcessEngine) -> None:
    run_id = await engine.start_run("timed_out", {"seconds": 30})
    final = await engine.wait_finished(run_id)
    assert final["status"] == "failed"
    assert final["error"]["type"] == "NodeTimeout"
    assert final["error"]["node"] == "oversleep" and final["error"]["attempts"] == 2
    assert "timeout of 0.3s" in final["error"]["message"]
    steps = await engine.steps(run_id)
    assert [(s["attempt"], s["status"], s["error"]["type"]) for s in steps] == [
        (1, "failed", "NodeTimeout"),
        (2, "failed", "NodeTimeout"),
    ]
    assert all(s["duration_ms"] < 5000 for s in steps)  # given up at the deadline, not after the 30 s sleep


async def test_an_async_node_within_its_timeout_completes(engine: InProcessEngine) -> None:
    run_id = await engine.start_run("timed_out", {"seconds": 0.01})
    final = await engine.wait_finished(run_id)
    assert final["status"] == "completed" and final["state"]["woke"] is True


async def test_a_hung_sync_node_holds_its_slots_while_other_runs_finish(bare_engine: Engine, tmp_path: Path) -> None:
    engine = bare_engine
    await engine.start_coordinator()
    engine.start_worker(capacity=3)
    await engine.wait_for_workers(1)
    release = tmp_path / "release"
    hung_id = await engine.start_run("hung", {"release_file": str(release)})
    final = await engine.wait_finished(hung_id)
    assert final["status"] == "failed" and final["error"]["type"] == "NodeTimeout"
    assert final["error"]["attempts"] == 2
    # Both abandoned threads still run: two of the three slots are stuck, and the coordinator knows it.
    (worker,) = await engine.workers_info()
    assert worker["stuck_slots"] == 2
    others = [await engine.start_run("blocks", {"seconds": 0.2}) for _ in range(4)]  # sync: thread slots
    most_in_flight = 0

    async def others_finished() -> bool:
        nonlocal most_in_flight
        (info,) = await engine.workers_info()
        most_in_flight = max(most_in_flight, info["in_flight"])
        states = [(await engine.state(run_id))["status"] for run_id in others]
        return states == ["completed"] * len(others)

    await engine.wait_until(others_finished, what="the other runs to finish")
    assert most_in_flight == 1  # only the one free thread slot gets sync jobs, never the stuck ones
    assert engine.workers[0].alive()

    release.touch()  # the stuck threads return, and their slots come back

    async def slots_freed() -> bool:
        (info,) = await engine.workers_info()
        return info["stuck_slots"] == 0

    await engine.wait_until(slots_freed, what="the stuck slots to be freed")
    assert (await engine.state(hung_id))["status"] == "failed"  # a late result changes nothing


async def test_a_worker_whose_slots_are_all_stuck_exits_for_a_fresh_one(bare_engine: Engine, tmp_path: Path) -> None:
    engine = bare_engine
    await engine.start_coordinator()
    first = engine.start_worker(capacity=1)
    await engine.wait_for_workers(1)
    run_id = await engine.start_run("hung", {"release_file": str(tmp_path / "never")})

    await engine.wait_until(lambda: _exited(first), what="the stuck worker to exit")
    assert first.popen.returncode == EXIT_STUCK

    async def gone() -> bool:
        return not await engine.workers_info()

    await engine.wait_until(gone, what="the coordinator to drop the worker")  # it said goodbye
    # The run waits for a worker; a fresh one takes the second attempt (and gets stuck the same way).
    assert (await engine.state(run_id))["status"] == "running"
    second = engine.start_worker(capacity=1)
    final = await engine.wait_finished(run_id)
    assert final["status"] == "failed" and final["error"]["type"] == "NodeTimeout"
    steps = await engine.steps(run_id)
    assert [(s["attempt"], s["status"], s["worker_id"]) for s in steps] == [(1, "failed", "w1"), (2, "failed", "w2")]
    await engine.wait_until(lambda: _exited(second), what="the second stuck worker to exit")
    assert second.popen.returncode == EXIT_STUCK


async def _exited(proc: Proc) -> bool:
    return not proc.alive()
