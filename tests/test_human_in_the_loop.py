"""A person in the loop: runs pause (declared interrupts, a node's question, an error), wait durably
holding no worker slot, and go on when resumed; their history can be read and forked."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

from engine import Engine, InProcessEngine

MESSY = "import os\ndef f(a, b=[]):\n    try:\n        return eval(a)\n    except:\n        pass\n"


async def wait_status(engine: Engine | InProcessEngine, run_id: str, status: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def reached() -> bool:
        found.update(await engine.state(run_id))
        return found["status"] == status

    await engine.wait_until(reached, what=f"run {run_id} to be {status}")
    return found


async def resume(engine: Engine | InProcessEngine, run_id: str, **body: Any) -> tuple[int, dict[str, Any]]:
    return await engine.request("POST", f"/runs/{run_id}/resume", json=body)


async def test_a_run_interrupted_before_refactor_resumes_with_an_edited_state(engine: InProcessEngine) -> None:
    run_id = await engine.start_run("code_review_agent", {"raw_code": MESSY}, interrupt_before=["refactor"])
    paused = await wait_status(engine, run_id, "paused")
    assert paused["pause"] == {"reason": "interrupt_before", "node": "refactor", "branches": ["refactor"]}
    assert paused["current_node"] == "refactor" and paused["pending"] == ["refactor"]
    assert paused["state"]["sources"] == {"snippet.py": MESSY}  # the state as the review left it, for a person to read

    edited = {"snippet.py": "def edited(x):\n    return x\n"}
    status, body = await resume(engine, run_id, state_update={"sources": edited}, by="reviewer@example.com")
    assert status == 200 and body["status"] == "running", body
    done = await engine.wait_finished(run_id, timeout=60)
    assert done["status"] == "completed"
    assert "def edited" in done["state"]["refactored_code"] and "eval" not in done["state"]["refactored_code"]
    steps = await engine.steps(run_id)
    (update,) = [s for s in steps if s["node"] == "__resume__"]
    assert update["delta"] == {"sources": edited} and update["route"] == {"by": "reviewer@example.com"}
    events = [e["event"] for e in await engine.ws_events(run_id)]
    assert events.index("run_paused") < events.index("run_resumed")


async def test_a_node_that_asks_a_question_gets_the_answer(engine: InProcessEngine) -> None:
    run_id = await engine.start_run("approval", {"release": "v2"})
    paused = await wait_status(engine, run_id, "paused")
    assert paused["pause"]["reason"] == "interrupt" and paused["pause"]["payload"] == {"question": "ship v2?"}
    _, listed = await engine.request("GET", "/runs?status=paused")
    assert [r["run_id"] for r in listed["runs"]] == [run_id]

    assert (await resume(engine, run_id, answer="yes"))[0] == 200
    done = await engine.wait_finished(run_id)
    assert done["state"]["approved"] == "yes" and done["state"]["shipped"] is True
    assert done["state"]["asked_attempt"] == 2  # the node ran again, from its start, with the answer


async def test_a_failing_node_with_pause_on_error_is_fixed_by_a_state_update(engine: InProcessEngine) -> None:
    run_id = await engine.start_run("fragile", {"divisor": 0}, pause_on_error=True)
    paused = await wait_status(engine, run_id, "paused")
    assert paused["pause"]["reason"] == "error" and paused["pause"]["error"]["type"] == "ZeroDivisionError"
    assert (await resume(engine, run_id, state_update={"divisor": 4}))[0] == 200
    done = await engine.wait_finished(run_id)
    assert (done["status"], done["state"]["result"]) == ("completed", 2.5)
    without = await engine.wait_finished(await engine.start_run("fragile", {"divisor": 0}))
    assert without["status"] == "failed"  # only the run that asked for it pauses


async def test_resume_answers_409_unless_paused_and_404_for_an_unknown_run(engine: InProcessEngine) -> None:
    finished = await engine.start_run("counter_loop", {"count": 0, "target": 1})
    await engine.wait_finished(finished)
    status, body = await resume(engine, finished, answer="late")
    assert status == 409 and "completed, not paused" in body["error"]
    status, body = await resume(engine, "no-such-run")
    assert status == 404 and "unknown run" in body["error"]

    run_id = await engine.start_run("approval", {"release": "v3"})
    await wait_status(engine, run_id, "paused")
    status, body = await resume(engine, run_id, state_update=[1])
    assert status == 400 and "state_update" in body["error"]
    first, second = await asyncio.gather(resume(engine, run_id, answer="a"), resume(engine, run_id, answer="b"))
    assert sorted([first[0], second[0]]) == [200, 409]
    done = await engine.wait_finished(run_id)
    winner = "a" if first[0] == 200 else "b"
    assert done["state"]["approved"] == winner
    assert sum(e["event"] == "run_resumed" for e in await engine.ws_events(run_id)) == 1


async def test_a_paused_run_can_be_cancelled(engine: InProcessEngine) -> None:
    run_id = await engine.start_run("approval", {"release": "v4"})
    await wait_status(engine, run_id, "paused")
    status, body = await engine.request("POST", f"/runs/{run_id}/cancel")
    assert status == 200 and body["status"] == "cancelled" and body["pause"] is None


async def test_a_paused_run_holds_no_slot_and_survives_a_coordinator_kill(tmp_path: Path) -> None:
    engine = Engine(tmp_path)
    try:
        await engine.start(workers=2, capacity=2)
        run_id = await engine.start_run("approval", {"release": "v5"})
        await wait_status(engine, run_id, "paused")
        workers = await engine.workers_info()
        assert sum(w["in_flight"] for w in workers) == 0
        _, health = await engine.request("GET", "/healthz")
        assert health["free_slots"] == 4

        assert engine.coordinator is not None
        await engine.stop_process(engine.coordinator, signal.SIGKILL)
        await engine.start_coordinator()
        await engine.wait_for_workers(2)
        again = await engine.state(run_id)
        assert again["status"] == "paused" and again["pause"]["payload"] == {"question": "ship v5?"}
        assert (await resume(engine, run_id, answer="after the restart"))[0] == 200
        assert (await engine.wait_finished(run_id))["state"]["approved"] == "after the restart"
    finally:
        await engine.close()


async def test_a_fork_from_step_2_does_not_run_the_first_steps_again(engine: InProcessEngine) -> None:
    parent = await engine.start_run("accumulate", {"step_size": 1})
    original = await engine.wait_finished(parent)
    assert original["state"] == {"step_size": 1, "total": 4, "passes": [1, 2, 3, 4]}

    status, child = await engine.request(
        "POST", f"/runs/{parent}/fork", json={"step": 2, "state_update": {"step_size": 10}}
    )
    assert status == 201, child
    assert child["forked_from"] == {"run_id": parent, "step": 2, "updated_keys": ["step_size"]}
    forked = await engine.wait_finished(child["run_id"])
    assert forked["state"] == {"step_size": 10, "total": 22, "passes": [1, 2, 3, 4]}  # 2 + 10 + 10
    child_steps = await engine.steps(child["run_id"])
    assert [s["step"] for s in child_steps] == [3, 4]  # steps 1 and 2 were not executed again
    status, parent_view = await engine.request("GET", f"/runs/{parent}")
    assert parent_view["forks"] == [child["run_id"]]

    status, body = await engine.request("POST", f"/runs/{parent}/fork", json={"step": 9})
    assert status == 400 and "ended (completed) at step 4" in body["error"]


async def test_history_lists_every_step_with_the_state_after_it_by_pages(engine: InProcessEngine) -> None:
    run_id = await engine.start_run("accumulate", {"step_size": 2})
    await engine.wait_finished(run_id)
    status, page = await engine.request("GET", f"/runs/{run_id}/history?limit=3")
    assert status == 200 and len(page["steps"]) == 3 and page["next_cursor"] == "3"
    first = page["steps"][0]
    assert (first["step"], first["node"], first["delta"]) == (1, "add", {"total": 2, "passes": [1]})
    assert first["state_after"] == {"step_size": 2, "total": 2, "passes": [1]}
    _, rest = await engine.request("GET", f"/runs/{run_id}/history?cursor={page['next_cursor']}")
    assert rest["next_cursor"] is None
    assert rest["steps"][-1]["state_after"] == (await engine.state(run_id))["state"]
    assert (await engine.request("GET", "/runs/nope/history"))[0] == 404


async def test_interrupts_declared_on_python_and_json_graphs_pause_every_run(engine: InProcessEngine) -> None:
    run_id = await engine.start_run("reviewed_sum", {"n": 1})
    paused = await wait_status(engine, run_id, "paused")
    assert paused["pause"]["reason"] == "interrupt_after" and paused["pause"]["node"] == "double"
    assert (await resume(engine, run_id))[0] == 200
    assert (await engine.wait_finished(run_id))["state"] == {"n": 4}

    definition = {
        "graph_id": "gated_json",
        "entry_point": "first",
        "interrupt_before": ["second"],
        "nodes": [
            {"name": "first", "tool": "hitl.mark", "args": {"key": "a"}},
            {"name": "second", "tool": "hitl.mark", "args": {"key": "b"}},
        ],
        "edges": [{"from": "first", "to": "second"}, {"from": "second", "to": "END"}],
    }
    assert (await engine.request("POST", "/graph/create", json=definition))[0] == 201
    run_id = await engine.start_run("gated_json", {})
    paused = await wait_status(engine, run_id, "paused")
    assert paused["pause"]["node"] == "second" and paused["state"] == {"a": True}
    assert (await resume(engine, run_id))[0] == 200
    assert (await engine.wait_finished(run_id))["state"] == {"a": True, "b": True}


async def test_a_run_request_naming_an_unknown_node_to_pause_at_is_a_400(engine: InProcessEngine) -> None:
    status, body = await engine.request(
        "POST", "/graph/run", json={"graph_id": "counter_loop", "interrupt_before": ["ghost"]}
    )
    assert status == 400 and "'interrupt_before' names ['ghost']" in body["error"]
