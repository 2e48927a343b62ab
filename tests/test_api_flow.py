"""The seed README's flow, end to end, against an engine in the test's event loop."""

from __future__ import annotations

import asyncio
import json
import subprocess

from engine import InProcessEngine

SEED_BODY = """{
           "graph_id": "code_review_agent",
           "initial_state": {
             "raw_code": "def complex_function(): ... "
           }
         }"""


async def test_seed_curl_flow_completes_and_streams_its_events(engine: InProcessEngine) -> None:
    # The seed's command, word for word (only the host and port differ); in a thread, since the
    # engine answering it runs on this event loop.
    posted = await asyncio.to_thread(
        subprocess.run,
        [
            "curl",
            "-s",
            "-X",
            "POST",
            f"{engine.url}/graph/run",
            "-H",
            "Content-Type: application/json",
            "-d",
            SEED_BODY,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    accepted = json.loads(posted.stdout)
    run_id = accepted["run_id"]
    assert accepted["status"] in ("queued", "running")

    final = await engine.wait_finished(run_id)
    polled = await asyncio.to_thread(
        subprocess.run,
        ["curl", "-s", "-X", "GET", f"{engine.url}/graph/state/{run_id}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(polled.stdout) == final
    assert final["status"] == "completed", final
    state = final["state"]
    assert [f["name"] for f in state["functions"]] == ["complex_function"]
    assert 0 <= state["quality_score"] <= 100
    assert state["iteration"] >= 1
    assert state["stop_reason"] in ("threshold_reached", "nothing_to_fix", "max_iterations")
    assert state["report"].startswith("# Code review: quality")
    # extract/complexity/issues per pass, a refactor between passes, then the LLM step and the report
    assert final["step_count"] == 3 * state["iteration"] + (state["iteration"] - 1) + 2

    events = await engine.ws_events(run_id)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    names = [e["event"] for e in events]
    assert names[0] == "run_queued" and names[-1] == "run_completed"
    started = [e["node"] for e in events if e["event"] == "node_started"]
    assert started[:3] == ["extract_functions", "check_complexity", "detect_issues"]
    for e in events:
        assert set(e) >= {"seq", "time", "event", "node", "worker", "level", "fields"}
    completed = [e for e in events if e["event"] == "node_completed"]
    assert all(e["worker"] for e in completed)


async def test_conditional_loop_runs_the_expected_number_of_iterations(engine: InProcessEngine) -> None:
    run_id = await engine.start_run("counter_loop", {"count": 0, "target": 7})
    final = await engine.wait_finished(run_id)
    assert final["status"] == "completed"
    assert final["state"]["count"] == 7
    assert len(final["state"]["trace"]) == 7
    assert final["step_count"] == 7
    steps = await engine.steps(run_id)
    assert [s["step"] for s in steps] == list(range(1, 8))
    assert [s["route"] for s in steps] == ["again"] * 6 + ["done"]


async def test_a_failing_node_fails_the_run_with_error_and_traceback(engine: InProcessEngine) -> None:
    run_id = await engine.start_run("failing", {"payload": "xyz"})
    final = await engine.wait_finished(run_id)
    assert final["status"] == "failed"
    error = final["error"]
    assert error["node"] == "explode"
    assert error["type"] == "ValueError"
    assert error["message"] == "cannot handle 'xyz'"
    assert "in explode" in error["traceback"] and "ValueError" in error["traceback"]
    assert final["state"]["prepared"] is True  # the step before the failure was applied
    assert final["current_node"] == "explode"
    events = await engine.ws_events(run_id)
    assert events[-1]["event"] == "run_failed"
    assert any(e["event"] == "node_failed" and e["node"] == "explode" for e in events)


async def test_two_workers_share_the_jobs_of_many_concurrent_runs(engine: InProcessEngine) -> None:
    run_ids = [await engine.start_run("slow_pair", {"delay": 0.05}) for _ in range(20)]
    workers_seen = set()
    for run_id in run_ids:
        final = await engine.wait_finished(run_id)
        assert final["status"] == "completed"
        workers_seen.update(s["worker_id"] for s in await engine.steps(run_id))
    assert workers_seen == {"w1", "w2"}
    info = {w["worker_id"]: w for w in await engine.workers_info()}
    assert info["w1"]["jobs_done"] + info["w2"]["jobs_done"] == 40
    assert info["w1"]["jobs_done"] > 0 and info["w2"]["jobs_done"] > 0


async def test_node_logs_reach_the_run_stream(engine: InProcessEngine) -> None:
    run_id = await engine.start_run("chatty", {"lines": 4})
    events = await engine.ws_events(run_id)
    logs = [e for e in events if e["event"] == "node_log"]
    assert [e["fields"]["item"] for e in logs] == [0, 1, 2, 3]
    assert all(e["node"] == "work" and e["fields"]["message"] == "progress" for e in logs)
    assert events[-1]["event"] == "run_completed"


async def test_listings_show_graphs_runs_and_workers(engine: InProcessEngine) -> None:
    done = await engine.start_run("counter_loop", {"count": 0, "target": 1})
    failed = await engine.start_run("failing", {})
    await engine.wait_finished(done)
    await engine.wait_finished(failed)

    status, graphs = await engine.request("GET", "/graphs")
    assert status == 200
    by_id = {g["graph_id"]: g for g in graphs["graphs"]}
    assert {"code_review_agent", "counter_loop", "failing", "slow_pair", "chatty"} <= set(by_id)
    loop = by_id["counter_loop"]
    assert loop["entry_point"] == "increment" and loop["version"] == 1
    assert loop["conditional_edges"] == [
        {"source": "increment", "router": "enough", "branches": {"again": "increment", "done": "__end__"}}
    ]
    status, one = await engine.request("GET", "/graphs/failing")
    assert status == 200 and one["edges"] == [
        {"source": "prepare", "target": "explode"},
        {"source": "explode", "target": "__end__"},
    ]

    status, runs = await engine.request("GET", "/runs?status=failed")
    assert status == 200 and [r["run_id"] for r in runs["runs"]] == [failed]
    status, runs = await engine.request("GET", "/runs?graph_id=counter_loop")
    assert [r["run_id"] for r in runs["runs"]] == [done]
    status, runs = await engine.request("GET", "/runs?limit=1")
    assert [r["run_id"] for r in runs["runs"]] == [failed]  # newest first

    workers = await engine.workers_info()
    assert sorted(w["worker_id"] for w in workers) == ["w1", "w2"]
    for w in workers:
        assert w["capacity"] == 4 and w["in_flight"] == 0 and w["pid"] > 0 and w["last_heartbeat"]
    status, health = await engine.request("GET", "/healthz")
    assert status == 200 and health["status"] == "ok" and health["workers"] == 2
