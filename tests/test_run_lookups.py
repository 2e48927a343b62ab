"""Submissions that name their run ask the store whether it exists together, and still get one run per id."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from engine import InProcessEngine

from awe.coordinator.run_lookups import RunLookups
from awe.store.sqlite import Store

STATE = {"count": 0, "target": 2}


async def test_concurrent_submissions_of_the_same_ids_give_one_run_each(engine: InProcessEngine) -> None:
    done = [await engine.start_run("counter_loop", STATE, run_id=f"done-{i}") for i in range(5)]
    for run_id in done:
        await engine.wait_finished(run_id)

    def body(run_id: str) -> dict[str, Any]:
        return {"graph_id": "counter_loop", "initial_state": STATE, "run_id": run_id}

    fresh = [f"new-{i}" for i in range(20)]
    sent = [*fresh, *fresh, *fresh, *done]  # each new id three times at once, and ids that exist
    answers = await asyncio.gather(*(engine.request("POST", "/graph/run", json=body(run_id)) for run_id in sent))

    for run_id in fresh:
        mine = [answer for rid, (_, answer) in zip(sent, answers, strict=True) if rid == run_id]
        assert [a["created"] for a in mine].count(True) == 1, mine
        assert {a["run_id"] for a in mine} == {run_id}
    for run_id, (status, answer) in zip(sent, answers, strict=True):
        if run_id in done:
            assert (status, answer["created"], answer["status"]) == (200, False, "completed")
    for run_id in fresh:
        assert (await engine.wait_finished(run_id))["status"] == "completed"
    _, runs = await engine.request("GET", "/runs?limit=100")
    assert sorted(r["run_id"] for r in runs["runs"]) == sorted([*done, *fresh])


async def test_questions_asked_together_are_answered_by_one_query(engine: InProcessEngine) -> None:
    run_ids = [await engine.start_run("counter_loop", STATE, run_id=f"known-{i}") for i in range(3)]
    assert engine.coordinator is not None
    lookups = RunLookups(engine.coordinator.coordinator.store.existing_run_ids)
    asked = [*run_ids, "unknown-1", run_ids[0], "unknown-2"]
    assert await asyncio.gather(*(lookups.exists(run_id) for run_id in asked)) == [True] * 3 + [False, True, False]
    assert lookups.queries == 1
    assert await lookups.exists("unknown-3") is False and lookups.queries == 2
    for run_id in run_ids:
        await engine.wait_finished(run_id)


async def test_every_asker_gets_the_stores_error(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "closed.db"))
    await store.open()
    await store.close()
    lookups = RunLookups(store.existing_run_ids)
    answers = await asyncio.gather(lookups.exists("a"), lookups.exists("b"), return_exceptions=True)
    assert all(isinstance(answer, AssertionError) for answer in answers), answers
    with pytest.raises(AssertionError, match="store is not open"):
        await lookups.exists("c")
