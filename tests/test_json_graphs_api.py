"""Graphs created over the API: stored, versioned, learnt by workers without a restart, dispatched by tool.

Most tests run the engine in the test's event loop; the two that restart the coordinator or give
workers different tools run real processes.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from engine import TESTS_DIR, Engine, InProcessEngine

EXAMPLES = TESTS_DIR.parent / "examples"
GRAPHS = ("sample_graphs", "json_tools")


def counter(graph_id: str = "counter_json", *, by: int = 1) -> dict[str, Any]:
    """A loop written in JSON: add ``by`` to ``count`` until it reaches ``target``."""
    return {
        "graph_id": graph_id,
        "entry_point": "bump",
        "nodes": [{"name": "bump", "tool": "test.add", "args": {"key": "count", "by": by}}],
        "conditional_edges": [
            {"from": "bump", "cases": [{"if": "state.count >= state.target", "to": "END"}], "else": "bump"}
        ],
    }


async def create(engine: Engine | InProcessEngine, definition: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return await engine.request("POST", "/graph/create", json=definition)


@pytest.fixture
async def json_engine(tmp_path: Path) -> AsyncIterator[InProcessEngine]:
    engine = InProcessEngine(tmp_path, graphs=GRAPHS)
    try:
        await engine.start(workers=2)
        yield engine
    finally:
        await engine.close()


async def test_a_graph_created_while_the_engine_runs_runs_at_once(json_engine: InProcessEngine) -> None:
    status, body = await create(json_engine, counter())
    assert (status, body) == (201, {"graph_id": "counter_json", "version": 1})
    run_id = await json_engine.start_run("counter_json", {"count": 0, "target": 3})
    run = await json_engine.wait_finished(run_id)
    assert (run["status"], run["state"]["count"], run["graph_version"]) == ("completed", 3, 1)

    status, graph = await json_engine.request("GET", "/graphs/counter_json")
    assert status == 200 and graph["source"] == "json" and graph["definition"]["graph_id"] == "counter_json"
    assert graph["versions"] == [{"version": 1, "created_at": graph["created_at"]}]
    assert "flowchart" in graph["mermaid"] and "bump" in graph["mermaid"]
    _, listed = await json_engine.request("GET", "/graphs")
    assert {"counter_json", "counter_loop", "code_review_agent"} <= {g["graph_id"] for g in listed["graphs"]}


async def test_it_survives_a_coordinator_restart_and_a_new_worker_learns_it(tmp_path: Path) -> None:
    json_engine = Engine(tmp_path, graphs=GRAPHS)
    try:
        await json_engine.start(workers=2)
        await _restart_with_a_new_worker(json_engine)
    finally:
        await json_engine.close()


async def _restart_with_a_new_worker(json_engine: Engine) -> None:
    assert (await create(json_engine, counter()))[0] == 201
    assert json_engine.coordinator is not None
    await json_engine.stop_process(json_engine.coordinator)
    for proc in list(json_engine.workers):
        await json_engine.stop_process(proc)
    json_engine.workers.clear()
    await json_engine.start_coordinator()
    json_engine.start_worker()  # started after the graph was created: it learns it from the coordinator
    await json_engine.wait_for_workers(1)
    _, listed = await json_engine.request("GET", "/graphs")
    assert "counter_json" in {g["graph_id"] for g in listed["graphs"]}
    run_id = await json_engine.start_run("counter_json", {"count": 0, "target": 2})
    assert (await json_engine.wait_finished(run_id))["state"]["count"] == 2


async def test_a_run_keeps_its_version_when_a_new_one_is_posted(json_engine: InProcessEngine) -> None:
    slow = {
        "graph_id": "versioned",
        "entry_point": "wait",
        "nodes": [
            {"name": "wait", "tool": "test.wait", "args": {"seconds": 1.0}},
            {"name": "bump", "tool": "test.add", "args": {"key": "count", "by": 1}},
        ],
        "edges": [{"from": "wait", "to": "bump"}, {"from": "bump", "to": "END"}],
    }
    assert (await create(json_engine, slow))[1]["version"] == 1
    first = await json_engine.start_run("versioned", {"count": 0})
    slow["nodes"][1]["args"]["by"] = 100
    assert (await create(json_engine, slow))[1]["version"] == 2
    second = await json_engine.start_run("versioned", {"count": 0})
    pinned = await json_engine.start_run("versioned", {"count": 0}, version=1)
    results = [await json_engine.wait_finished(r) for r in (first, second, pinned)]
    assert [(r["graph_version"], r["state"]["count"]) for r in results] == [(1, 1), (2, 100), (1, 1)]


async def test_the_code_review_agent_in_json_ends_in_the_python_agents_state(json_engine: InProcessEngine) -> None:
    definition = json.loads((EXAMPLES / "code_review_agent.json").read_text())
    assert (await create(json_engine, definition))[0] == 201
    code = "import os\ndef f(a, b=[]):\n    try:\n        return eval(a)\n    except:\n        pass\n"
    for state in ({"raw_code": code}, {"raw_code": "def ok():\n    return 1\n"}, {"raw_code": "def (:"}):
        python_run = await json_engine.start_run("code_review_agent", state)
        json_run = await json_engine.start_run(definition["graph_id"], state)
        python_state = (await json_engine.wait_finished(python_run, timeout=60))["state"]
        json_state = (await json_engine.wait_finished(json_run, timeout=60))["state"]
        assert json_state == python_state


async def test_a_fan_out_with_a_join_in_json_gives_the_python_graphs_state(json_engine: InProcessEngine) -> None:
    definition = {
        "graph_id": "fan_json",
        "entry_point": "start",
        "reducers": {"notes": "append"},
        "nodes": [
            {"name": "start", "tool": "test.note", "args": {"text": "start"}},
            {"name": "left", "tool": "test.note", "args": {"text": "left"}},
            {"name": "right", "tool": "test.note", "args": {"text": "right"}},
            {"name": "join", "tool": "test.note", "args": {"text": "join"}},
        ],
        "edges": [
            {"from": "start", "to": "left"},
            {"from": "start", "to": "right"},
            {"from": ["left", "right"], "to": "join"},
            {"from": "join", "to": "END"},
        ],
    }
    assert (await create(json_engine, definition))[0] == 201
    json_run = await json_engine.wait_finished(await json_engine.start_run("fan_json", {}))
    python_run = await json_engine.wait_finished(await json_engine.start_run("fan_python", {}))
    assert json_run["status"] == python_run["status"] == "completed"
    assert json_run["state"] == python_run["state"] == {"notes": ["start", "left", "right", "join"]}


async def test_deleting_a_graph_is_refused_while_a_run_is_in_flight(json_engine: InProcessEngine) -> None:
    waiting = {
        "graph_id": "to_delete",
        "entry_point": "wait",
        "nodes": [{"name": "wait", "tool": "test.wait", "args": {"seconds": 1.0}}],
        "edges": [{"from": "wait", "to": "END"}],
    }
    assert (await create(json_engine, waiting))[0] == 201
    run_id = await json_engine.start_run("to_delete", {})
    status, body = await json_engine.request("DELETE", "/graphs/to_delete")
    assert status == 409 and "in flight" in body["error"], body
    await json_engine.wait_finished(run_id)
    assert (await json_engine.request("DELETE", "/graphs/to_delete"))[0] == 200
    assert (await json_engine.request("GET", "/graphs/to_delete"))[0] == 404
    status, body = await json_engine.request("POST", "/graph/run", json={"graph_id": "to_delete"})
    assert status == 404
    assert (await json_engine.request("GET", f"/graph/state/{run_id}"))[1]["status"] == "completed"  # kept
    status, body = await json_engine.request("DELETE", "/graphs/counter_loop")
    assert status == 409 and "Python graph module" in body["error"]


async def test_tools_are_listed_with_their_descriptions_and_schemas(json_engine: InProcessEngine) -> None:
    status, body = await json_engine.request("GET", "/tools")
    assert status == 200
    tools = {t["name"]: t for t in body["tools"]}
    assert tools["test.add"]["description"].startswith("Adds ``by``")
    assert tools["test.add"]["parameters"]["required"] == ["key"]
    assert tools["test.add"]["workers"] == 2
    assert "code_review.refactor" in tools


INVALID = [
    # (definition, path, words)
    (
        {
            "graph_id": "bad id!",
            "entry_point": "a",
            "nodes": [{"name": "a", "tool": "test.add", "args": {"key": "k"}}],
            "edges": [{"from": "a", "to": "END"}],
        },
        "/graph_id",
        "",
    ),
    ({**counter("unknown_tool"), "nodes": [{"name": "bump", "tool": "no.such.tool"}]}, "/nodes/0/tool", "no.such.tool"),
    (
        {**counter("bad_args"), "nodes": [{"name": "bump", "tool": "test.add", "args": {"key": 5}}]},
        "/nodes/0/args/key",
        "expected string",
    ),
    ({**counter("bad_edge"), "edges": [{"from": "bump", "to": "ghost"}]}, "/edges/0/to", "ghost"),
    ({**counter("no_entry"), "entry_point": "ghost"}, "/entry_point", "ghost"),
    (
        {
            **counter("bad_condition"),
            "conditional_edges": [{"from": "bump", "cases": [{"if": "state.count >=", "to": "END"}], "else": "bump"}],
        },
        "/conditional_edges/0/cases/0/if",
        "",
    ),
    (
        {
            **counter("dunder"),
            "conditional_edges": [
                {"from": "bump", "cases": [{"if": "().__class__.__bases__", "to": "END"}], "else": "bump"}
            ],
        },
        "/conditional_edges/0/cases/0/if",
        "",
    ),
    (
        {
            **counter("forever"),
            "conditional_edges": [{"from": "bump", "cases": [{"if": "9**9**9**9 > 1", "to": "END"}], "else": "bump"}],
        },
        "/conditional_edges/0/cases/0/if",
        "",
    ),
]


@pytest.mark.parametrize("definition, path, words", INVALID, ids=[d["graph_id"] for d, _, _ in INVALID])
async def test_an_invalid_graph_is_a_400_naming_its_problem_and_nothing_is_stored(
    json_engine: InProcessEngine, definition: dict[str, Any], path: str, words: str
) -> None:
    status, body = await create(json_engine, definition)
    assert status == 400, body
    assert any(p["path"] == path and words in p["message"] for p in body["problems"]), body["problems"]
    _, listed = await json_engine.request("GET", "/graphs")
    assert definition["graph_id"] not in {g["graph_id"] for g in listed["graphs"]}


async def test_a_body_that_is_not_json_or_too_big_is_a_400_with_a_problem(json_engine: InProcessEngine) -> None:
    assert json_engine.session is not None
    for body, words in ((b"{not json", "not valid JSON"), (b'{"x": "' + b"a" * 300_000 + b'"}', "the limit is")):
        headers = {"Content-Type": "application/json"}
        async with json_engine.session.post(f"{json_engine.url}/graph/create", data=body, headers=headers) as r:
            answer = await r.json()
            assert r.status == 400 and words in answer["problems"][0]["message"], answer


async def test_a_node_is_dispatched_only_to_a_worker_with_its_tool_and_waits_for_one(tmp_path: Path) -> None:
    engine = Engine(tmp_path, graphs=(*GRAPHS, "rare_tools"))
    try:
        await engine.start_coordinator()
        engine.start_worker(worker_id="plain", graphs=GRAPHS)  # without rare.sign
        await engine.wait_for_workers(1)
        signed = {
            "graph_id": "signed",
            "entry_point": "sign",
            "nodes": [
                {"name": "sign", "tool": "rare.sign"},
                {"name": "bump", "tool": "test.add", "args": {"key": "n"}},
            ],
            "edges": [{"from": "sign", "to": "bump"}, {"from": "bump", "to": "END"}],
        }
        assert (await create(engine, signed))[0] == 201
        waiting = await engine.start_run("signed", {})

        events = await _events_until(engine, waiting, "run_waiting")
        assert "no connected worker has the tool 'rare.sign'" in events[-1]["fields"]["reason"]
        assert (await engine.state(waiting))["status"] == "queued"

        engine.start_worker(worker_id="rare")  # with every module, rare_tools included
        run = await engine.wait_finished(waiting)
        assert run["status"] == "completed" and run["state"] == {"signed_by": "rare", "n": 1}
        for _ in range(5):
            run = await engine.wait_finished(await engine.start_run("signed", {}))
            assert run["state"]["signed_by"] == "rare"
    finally:
        await engine.close()


async def _events_until(engine: Engine | InProcessEngine, run_id: str, name: str) -> list[dict[str, Any]]:
    assert engine.session is not None
    events: list[dict[str, Any]] = []
    async with engine.session.ws_connect(f"{engine.url}/ws/logs/{run_id}") as ws:
        async with asyncio.timeout(20):
            async for message in ws:
                events.append(message.json())
                if events[-1]["event"] == name:
                    return events
    raise AssertionError(f"no {name} event: {events}")


async def test_initial_state_is_checked_against_the_graphs_state_schema(json_engine: InProcessEngine) -> None:
    definition = json.loads((EXAMPLES / "code_review_agent.json").read_text())
    assert (await create(json_engine, definition))[0] == 201
    body = {"graph_id": definition["graph_id"], "initial_state": {"raw_code": 42}}
    status, answer = await json_engine.request("POST", "/graph/run", json=body)
    assert status == 400 and "state_schema" in answer["error"] and "raw_code" in answer["error"], answer
    _, runs = await json_engine.request("GET", f"/runs?graph_id={definition['graph_id']}")
    assert runs["runs"] == []


async def test_awe_graph_push_and_list_talk_to_the_api(json_engine: InProcessEngine, tmp_path: Path) -> None:
    good, bad = tmp_path / "counter.json", tmp_path / "bad.json"
    good.write_text(json.dumps(counter("pushed")))
    bad.write_text(json.dumps({**counter("pushed"), "entry_point": "ghost"}))

    async def awe(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "awe",
            "graph",
            *args,
            "--url",
            json_engine.url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        return proc.returncode or 0, out.decode(), err.decode()

    assert await awe("push", str(good)) == (0, "created graph 'pushed' version 1\n", "")
    code, out, err = await awe("push", str(bad))
    assert code == 1 and "/entry_point" in err and "ghost" in err, err
    code, out, err = await awe("push", str(tmp_path / "missing.json"))
    assert code == 1 and "cannot read" in err
    code, out, _ = await awe("list")
    assert code == 0 and "pushed  v1  json  1 nodes" in out and "counter_loop" in out
