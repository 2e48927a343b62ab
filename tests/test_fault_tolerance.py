"""Runs survive failures: retries, lost workers (SIGKILL), coordinator crashes, cancel, step limits."""

from __future__ import annotations

import signal

from engine import Engine, InProcessEngine


async def test_a_flaky_node_is_retried_and_completes(engine: InProcessEngine) -> None:
    run_id = await engine.start_run("retrying", {"fail_times": 2})
    final = await engine.wait_finished(run_id)
    assert final["status"] == "completed", final
    assert final["state"]["succeeded_on"] == 3
    steps = await engine.steps(run_id)
    assert [(s["attempt"], s["status"]) for s in steps] == [(1, "failed"), (2, "failed"), (3, "completed")]
    assert steps[0]["error"]["type"] == "ConnectionError"
    events = [e["event"] for e in await engine.ws_events(run_id)]
    assert events.count("node_retrying") == 2 and events[-1] == "run_completed"


async def test_a_node_that_always_fails_fails_the_run_after_its_attempts(engine: InProcessEngine) -> None:
    run_id = await engine.start_run("retrying", {"fail_times": 99})
    final = await engine.wait_finished(run_id)
    assert final["status"] == "failed"
    assert final["error"]["node"] == "call" and final["error"]["type"] == "ConnectionError"
    assert final["error"]["attempts"] == 3 and "flaky_call" in final["error"]["traceback"]
    assert [s["attempt"] for s in await engine.steps(run_id)] == [1, 2, 3]


async def test_programming_errors_are_not_retried(engine: InProcessEngine) -> None:
    run_id = await engine.start_run("not_retried", {})
    final = await engine.wait_finished(run_id)
    assert final["status"] == "failed" and final["error"]["type"] == "KeyError"
    assert [s["attempt"] for s in await engine.steps(run_id)] == [1]


async def test_the_step_limit_stops_an_endless_loop(engine: InProcessEngine) -> None:
    run_id = await engine.start_run("counter_loop", {"count": 0, "target": 10**9}, max_steps=15)
    final = await engine.wait_finished(run_id)
    assert final["status"] == "failed"
    assert final["error"]["type"] == "StepLimitExceeded"
    assert "step limit of 15 steps" in final["error"]["message"]
    assert final["step_count"] == 15 and final["state"]["count"] == 15


async def test_cancel_stops_a_running_run_and_keeps_its_state(engine: InProcessEngine) -> None:
    run_id = await engine.start_run("slow", {"seconds": 30, "keep": "me"})

    async def sleeping() -> bool:
        return any(w["in_flight"] == 1 for w in await engine.workers_info())

    await engine.wait_until(sleeping, what="the slow node to start")
    status, body = await engine.request("POST", f"/runs/{run_id}/cancel")
    assert status == 200 and body["status"] == "cancelled"
    final = await engine.state(run_id)
    assert final["status"] == "cancelled" and final["state"]["keep"] == "me" and final["finished_at"]

    async def slot_freed() -> bool:
        return all(w["in_flight"] == 0 for w in await engine.workers_info())

    await engine.wait_until(slot_freed, what="the worker to stop the cancelled job", timeout=5)
    events = await engine.ws_events(run_id)
    assert events[-1]["event"] == "run_cancelled"
    status, body = await engine.request("POST", f"/runs/{run_id}/cancel")
    assert status == 409 and "already cancelled" in body["error"]
    status, body = await engine.request("POST", "/runs/nope/cancel")
    assert status == 404


async def test_the_same_run_id_twice_gives_one_run(engine: InProcessEngine) -> None:
    body = {"graph_id": "counter_loop", "initial_state": {"count": 0, "target": 2}, "run_id": "order-17"}
    first = await engine.request("POST", "/graph/run", json=body)
    second = await engine.request("POST", "/graph/run", json=body)
    assert first[0] == 202 and first[1]["created"] is True
    assert second[0] == 200 and second[1]["created"] is False and second[1]["run_id"] == "order-17"
    await engine.wait_finished("order-17")
    third = await engine.request("POST", "/graph/run", json=body)
    assert third[0] == 200 and third[1]["status"] == "completed"
    _, runs = await engine.request("GET", "/runs")
    assert [r["run_id"] for r in runs["runs"]] == ["order-17"]
    assert len(await engine.steps("order-17")) == 2


async def test_a_worker_killed_mid_node_loses_its_attempt_and_another_worker_finishes(process_engine: Engine) -> None:
    engine = process_engine
    run_id = await engine.start_run("slow", {"seconds": 1.5})
    busy: list[dict] = []

    async def running_somewhere() -> bool:
        busy[:] = [w for w in await engine.workers_info() if w["in_flight"] == 1]
        return bool(busy)

    await engine.wait_until(running_somewhere, what="the slow node to start")
    victim = next(p for p in engine.workers if p.pid == busy[0]["pid"])
    await engine.stop_process(victim, signal.SIGKILL)
    final = await engine.wait_finished(run_id)
    assert final["status"] == "completed"
    survivor = ({"w1", "w2"} - {busy[0]["worker_id"]}).pop()
    assert final["state"]["finished_by"] == survivor
    steps = await engine.steps(run_id)
    assert [(s["node"], s["attempt"], s["status"], s["worker_id"]) for s in steps] == [
        ("sleep", 1, "lost", busy[0]["worker_id"]),
        ("sleep", 2, "completed", survivor),
        ("after", 1, "completed", steps[2]["worker_id"]),
    ]


async def test_the_coordinator_killed_with_50_runs_in_flight_resumes_them_all(bare_engine: Engine) -> None:
    engine = bare_engine
    await engine.start(workers=2)
    # Each run carries a value large enough for the values file beside the database: it survives too.
    document = "d" * 70_000
    run_ids = [await engine.start_run("slow_pair", {"delay": 0.2, "document": document}) for _ in range(50)]

    async def some_advanced() -> bool:
        _, body = await engine.request("GET", "/runs?status=running&limit=1000")
        return len(body["runs"]) >= 5

    await engine.wait_until(some_advanced, what="runs to be under way")
    _, unfinished = await engine.request("GET", "/healthz")
    assert unfinished["active_runs"] >= 10  # the kill lands with most runs still in flight
    assert engine.coordinator is not None
    await engine.stop_process(engine.coordinator, signal.SIGKILL)
    await engine.start_coordinator()
    for run_id in run_ids:
        final = await engine.wait_finished(run_id)
        assert final["status"] == "completed", final
        assert final["state"]["a_worker"] in ("w1", "w2") and final["state"]["b_worker"] in ("w1", "w2")
        assert final["state"]["document"] == document
        completed = [(s["step"], s["node"]) for s in await engine.steps(run_id) if s["status"] == "completed"]
        assert completed == [(1, "wait_a"), (2, "wait_b")]  # no step applied twice, none missing
