"""Waiting runs cost a coroutine, not a slot: async nodes have their own, large capacity per worker.

Agent workloads mostly wait (on model APIs and tools). A worker runs ``--capacity`` sync nodes at
once, each in a thread, and ``--async-capacity`` async nodes, each a coroutine on its loop.
"""

from __future__ import annotations

import asyncio
import time

from engine import InProcessEngine


async def _wall(engine: InProcessEngine, graph_id: str, runs: int, state: dict) -> float:
    started = time.monotonic()
    run_ids = [await engine.start_run(graph_id, dict(state)) for _ in range(runs)]
    for run_id in run_ids:
        assert (await engine.wait_finished(run_id))["status"] == "completed"
    return time.monotonic() - started


async def test_many_async_waits_run_at_once_on_one_thread_slot(engine: InProcessEngine) -> None:
    # The fixture's workers have 4 thread slots each; 40 async runs that each wait 0.5 s would take
    # 40 / 8 * 0.5 = 2.5 s if they queued for those slots, and about 0.5 s when they do not.
    one = await _wall(engine, "waits", 1, {"seconds": 0.5})
    many = await _wall(engine, "waits", 40, {"seconds": 0.5})
    assert many / one < 3, f"1 run: {one:.2f}s, 40 runs: {many:.2f}s"
    workers = await engine.workers_info()
    assert all(w["async_capacity"] == 1000 and w["capacity"] == 4 for w in workers)


async def test_sync_nodes_still_take_a_thread_slot_each(engine: InProcessEngine) -> None:
    # 16 sync runs that each block 0.3 s on 8 thread slots: two rounds, not one.
    one = await _wall(engine, "blocks", 1, {"seconds": 0.3})
    many = await _wall(engine, "blocks", 16, {"seconds": 0.3})
    assert many / one > 1.6, f"1 run: {one:.2f}s, 16 runs: {many:.2f}s"


async def test_wait_true_answers_with_the_final_state_once_the_run_ends(engine: InProcessEngine) -> None:
    body = {"graph_id": "counter_loop", "initial_state": {"count": 0, "target": 3}, "wait": True}
    status, run = await engine.request("POST", "/graph/run", json=body)
    assert status == 200 and run["status"] == "completed" and run["state"]["count"] == 3, run
    assert run["created"] is True and run["finished_at"] is not None

    body = {"graph_id": "waits", "initial_state": {"seconds": 1}, "wait": True, "timeout": 0.2}
    status, run = await engine.request("POST", "/graph/run", json=body)
    assert status == 202 and run["status"] in ("queued", "running")  # not over when the wait ran out

    # Two callers wait on one run: the one whose wait runs out first leaves the other's wait alone.
    body = {"graph_id": "waits", "run_id": "waited-twice", "initial_state": {"seconds": 0.5}, "wait": True}
    short, long = await asyncio.gather(
        engine.request("POST", "/graph/run", json={**body, "timeout": 0.1}),
        engine.request("POST", "/graph/run", json={**body, "timeout": 30}),
    )
    assert short[0] == 202 and short[1]["status"] in ("queued", "running")
    assert long[0] == 200 and long[1]["status"] == "completed" and long[1]["finished_at"] is not None

    status, body = await engine.request("POST", "/graph/run", json={"graph_id": "waits", "timeout": 1})
    assert status == 400 and "'timeout' goes with" in body["error"]


async def test_a_client_follows_many_runs_through_a_since_cursor(engine: InProcessEngine) -> None:
    status, first = await engine.request("GET", "/runs?since=&status=completed")
    assert status == 200 and first["runs"] == [] and first["next_cursor"] == ""
    run_ids = {await engine.start_run("counter_loop", {"count": 0, "target": 2}) for _ in range(5)}
    seen: set[str] = set()
    cursor = ""
    for _ in range(200):  # bounded: each answer lists only what changed since the last one
        _, page = await engine.request("GET", f"/runs?status=completed&since={cursor}&limit=2")
        seen |= {r["run_id"] for r in page["runs"]}
        stamps = [(r["updated_at"], r["run_id"]) for r in page["runs"]]
        assert stamps == sorted(stamps)
        cursor = page["next_cursor"]
        if seen == run_ids:
            break
        await asyncio.sleep(0.02)
    assert seen == run_ids
    status, body = await engine.request("GET", "/runs?since=nonsense")
    assert status == 400 and "next_cursor" in body["error"]


async def test_inline_nodes_run_while_every_thread_slot_is_taken(tmp_path) -> None:
    async with InProcessEngine(tmp_path) as engine:
        await engine.start_coordinator()
        engine.start_worker(capacity=1)
        await engine.wait_for_workers(1)
        blocked = await engine.start_run("blocks", {"seconds": 1.0})  # holds the one thread
        inline = await engine.wait_finished(await engine.start_run("inline_count", {"count": 0}))
        assert inline["status"] == "completed" and inline["state"]["count"] == 3
        _, still = await engine.request("GET", f"/runs/{blocked}")
        assert still["status"] == "running"  # the inline run did not wait for the thread
        assert (await engine.wait_finished(blocked))["status"] == "completed"
