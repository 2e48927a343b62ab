"""Parallel branches: fan-out, joins, reducers, Send maps, failures; CPU parallelism and kills on real processes."""

from __future__ import annotations

import signal
from pathlib import Path

from engine import Engine, InProcessEngine

from awe.testing import timestamp


def _seconds(run: dict) -> float:
    return timestamp(run["finished_at"]) - timestamp(run["started_at"])


async def _calibrated_iterations(engine: Engine, target_s: float = 0.2) -> int:
    """Iterations of ``burn`` that take about ``target_s`` on a worker of this machine."""
    probe = 200_000
    run_id = await engine.start_run("chain_cpu", {"iterations": probe})
    run = await engine.wait_finished(run_id)
    per_branch = _seconds(run) / 4
    return max(10_000, int(probe * target_s / per_branch))


async def test_four_cpu_branches_on_two_workers_beat_the_same_work_in_a_row(process_engine: Engine) -> None:
    # Two worker processes: in one process the branches' threads would take turns holding the GIL.
    engine = process_engine
    iterations = await _calibrated_iterations(engine)
    parallel, serial = [], []
    for _ in range(3):  # alternate, and keep each kind's best: the machine is shared and noisy
        fan = await engine.wait_finished(await engine.start_run("fan_cpu", {"iterations": iterations}))
        chain = await engine.wait_finished(await engine.start_run("chain_cpu", {"iterations": iterations}))
        assert fan["status"] == chain["status"] == "completed"
        assert fan["state"]["total"] == chain["state"]["total"]  # the same work, the same answer
        parallel.append(_seconds(fan))
        serial.append(_seconds(chain))
        workers = {p["worker"] for p in fan["state"]["parts"]}
        assert workers == {"w1", "w2"}, fan["state"]["parts"]
    ratio = min(parallel) / min(serial)
    assert ratio < 0.8, f"fan-out {min(parallel):.3f}s vs in a row {min(serial):.3f}s (ratio {ratio:.2f})"

    steps = await engine.steps(fan["run_id"])
    assert {(s["step"], s["node"]) for s in steps} == {
        (1, "start"),
        (2, "cpu_a"),
        (2, "cpu_b"),
        (2, "cpu_c"),
        (2, "cpu_d"),
        (3, "total"),
    }  # the four branches share one step, and the join runs once after them
    assert {s["worker_id"] for s in steps if s["step"] == 2} == {"w1", "w2"}
    assert fan["state"]["joined"] == ["cpu_a", "cpu_b", "cpu_c", "cpu_d"]


async def test_reducers_give_the_same_state_whatever_order_the_branches_finish_in(engine: InProcessEngine) -> None:
    orders = [
        {"left": 0.0, "middle": 0.1, "right": 0.2},
        {"left": 0.2, "middle": 0.1, "right": 0.0},
        {"left": 0.1, "middle": 0.0, "right": 0.2},
        {"left": 0.0, "middle": 0.2, "right": 0.1},
    ]
    run_ids = [await engine.start_run("fan_reduce", {"delays": orders[i % len(orders)]}) for i in range(20)]
    finals, finish_orders = [], set()
    for run_id in run_ids:
        final = await engine.wait_finished(run_id)
        assert final["status"] == "completed", final
        finals.append({k: v for k, v in final["state"].items() if k != "delays"})
        branch_steps = [s for s in await engine.steps(run_id) if s["step"] == 2]
        finish_orders.add(tuple(s["node"] for s in sorted(branch_steps, key=lambda s: s["finished_at"])))
    assert len(finish_orders) >= 3, finish_orders  # the branches really did finish in different orders
    assert all(f == finals[0] for f in finals)
    assert finals[0] == {
        "log": ["left", "middle", "right"],  # applied by branch name, not by arrival
        "total": 111,
        "by_branch": {"left": 1, "middle": 10, "right": 100},
        "finished": ["left", "middle", "right"],  # a custom reducer sees the same order
    }


async def test_two_branches_writing_a_key_without_a_reducer_fail_the_run_naming_both(engine: InProcessEngine) -> None:
    final = await engine.wait_finished(await engine.start_run("fan_conflict", {}))
    assert final["status"] == "failed"
    error = final["error"]
    assert error["type"] == "WriteConflict" and error["key"] == "result"
    assert error["branches"] == ["x", "y"]
    assert "'result'" in error["message"] and "'x'" in error["message"] and "'y'" in error["message"]
    assert "reducer" in error["message"]
    assert "result" not in final["state"]  # neither write was applied


async def test_a_send_map_over_50_items_collects_50_results(engine: InProcessEngine) -> None:
    items = list(range(50))
    final = await engine.wait_finished(await engine.start_run("map_square", {"items": items}))
    assert final["status"] == "completed", final
    assert final["state"]["results"] == [i * i for i in items]  # folded in Send order
    assert final["state"]["count"] == 50
    assert set(final["state"]["workers"]) == {"w1", "w2"}
    steps = await engine.steps(final["run_id"])
    mapped = [s for s in steps if s["node"] == "square"]
    assert [s["branch"] for s in mapped] == [f"square[{i}]" for i in items]
    assert {s["step"] for s in mapped} == {2}
    assert [s["node"] for s in steps if s["step"] == 3] == ["collect"]  # triggered 50 times, runs once


async def test_a_failing_branch_lets_the_others_finish_then_fails_the_run_naming_it(engine: InProcessEngine) -> None:
    final = await engine.wait_finished(await engine.start_run("fan_failing", {"seconds": 0.5}))
    assert final["status"] == "failed"
    assert final["error"]["node"] == "broken" and final["error"]["type"] == "RuntimeError"
    assert "the broken branch broke" in final["error"]["message"]
    steps = {s["node"]: s for s in await engine.steps(final["run_id"])}
    assert steps["broken"]["status"] == "failed"
    assert steps["slow_ok"]["status"] == "completed"  # it was not cut short, and its result is on record
    assert steps["slow_ok"]["finished_at"] <= final["finished_at"]


async def _quick_branches_done(engine: Engine, run_id: str) -> bool:
    completed = {s["node"] for s in await engine.steps(run_id) if s["status"] == "completed"}
    return completed >= {"quick_a", "quick_b"}


def _starts(path: Path, branch: str) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.startswith(f"start {branch} ")]


async def test_a_worker_killed_mid_step_reruns_only_its_own_branch(process_engine: Engine, tmp_path: Path) -> None:
    engine = process_engine
    witness = tmp_path / "executions"
    run_id = await engine.start_run(
        "fan_witnessed", {"witness_file": str(witness), "seconds": {"slow": 3.0, "quick_a": 0.05, "quick_b": 0.05}}
    )

    await engine.wait_until(lambda: _quick_branches_done(engine, run_id), what="the quick branches to finish")
    busy = [w for w in await engine.workers_info() if w["in_flight"] == 1]
    assert len(busy) == 1
    victim = next(p for p in engine.workers if p.pid == busy[0]["pid"])
    await engine.stop_process(victim, signal.SIGKILL)

    final = await engine.wait_finished(run_id)
    assert final["status"] == "completed", final
    assert sorted(final["state"]["done"]) == ["quick_a", "quick_b", "slow"] and final["state"]["after"] is True
    assert len(_starts(witness, "quick_a")) == len(_starts(witness, "quick_b")) == 1
    assert len(_starts(witness, "slow")) == 2
    records = [(s["node"], s["attempt"], s["status"]) for s in await engine.steps(run_id) if s["step"] == 2]
    assert records == [
        ("quick_a", 1, "completed"),
        ("quick_b", 1, "completed"),
        ("slow", 1, "lost"),
        ("slow", 2, "completed"),
    ]


async def test_a_coordinator_killed_mid_step_keeps_the_branches_already_done(
    bare_engine: Engine, tmp_path: Path
) -> None:
    engine = bare_engine
    await engine.start(workers=2)
    witness = tmp_path / "executions"
    run_id = await engine.start_run(
        "fan_witnessed", {"witness_file": str(witness), "seconds": {"slow": 2.0, "quick_a": 0.05, "quick_b": 0.05}}
    )

    await engine.wait_until(lambda: _quick_branches_done(engine, run_id), what="the quick branches to finish")
    assert engine.coordinator is not None
    await engine.stop_process(engine.coordinator, signal.SIGKILL)
    await engine.start_coordinator()
    final = await engine.wait_finished(run_id)
    assert final["status"] == "completed", final
    for branch in ("quick_a", "quick_b", "slow"):
        assert len(_starts(witness, branch)) == 1, witness.read_text()  # the slow one was adopted, not re-run
    assert final["state"]["after"] is True


async def test_the_graph_description_shows_joins_and_reducers(engine: InProcessEngine) -> None:
    status, graph = await engine.request("GET", "/graphs/fan_cpu")
    assert status == 200
    assert graph["joins"] == [{"sources": ["cpu_a", "cpu_b", "cpu_c", "cpu_d"], "target": "total"}]
    assert graph["reducers"] == {"parts": "append"}
    assert {e["target"] for e in graph["edges"] if e["source"] == "start"} == {"cpu_a", "cpu_b", "cpu_c", "cpu_d"}
    status, reduce_graph = await engine.request("GET", "/graphs/fan_reduce")
    assert reduce_graph["reducers"]["finished"] == "sample_graphs.keep_order"


async def test_the_event_stream_shows_each_step_and_its_branches(engine: InProcessEngine) -> None:
    final = await engine.wait_finished(
        await engine.start_run("fan_reduce", {"delays": {"left": 0, "middle": 0, "right": 0}})
    )
    events = await engine.ws_events(final["run_id"])
    steps = [e["fields"] for e in events if e["event"] == "step_completed"]
    assert steps == [
        {"step": 1, "branches": ["start"], "next": ["left", "middle", "right"]},
        {"step": 2, "branches": ["left", "middle", "right"], "next": []},
    ]
    started = [(e["node"], e["fields"]["step"]) for e in events if e["event"] == "node_started"]
    assert sorted(started) == [("left", 2), ("middle", 2), ("right", 2), ("start", 1)]
    assert events[-1]["event"] == "run_completed"
