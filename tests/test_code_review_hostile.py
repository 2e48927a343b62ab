"""Hostile sources for the built-in code_review_agent, end to end through the engine: every run completes.

The hostile sources run on worker processes. On the in-process engine, where the node threads of
both workers share one interpreter, ``ast.parse`` failed now and then with "SystemError: AST
constructor recursion depth mismatch": CPython 3.11 keeps that count per interpreter, and threads
that parse at once can upset it. A worker process runs threads too, but half as many share a count.
"""

from __future__ import annotations

from engine import Engine, InProcessEngine

from awe.graphs.code_review import NODE_TIMEOUT_SECONDS

DEEP_SUM = "def f():\n    return " + "1+" * 1000 + "1"  # parses; too deep for radon and ast.unparse
TOO_DEEP_TO_PARSE = "x = " + "-" * 5000 + "1"
ELIF_CHAIN = "def g(x):\n    if x == 0:\n        return 0\n" + "".join(
    f"    elif x == {i}:\n        return {i}\n" for i in range(1, 1500)
)


async def test_hostile_sources_complete_with_a_finding(process_engine: Engine) -> None:
    engine = process_engine
    sources = {
        "deep_sum": {"raw_code": DEEP_SUM, "quality_threshold": 99},  # also takes the refactor path
        "too_deep_to_parse": {"raw_code": TOO_DEEP_TO_PARSE},
        "elif_chain": {"raw_code": ELIF_CHAIN},
        "nul_byte": {"raw_code": "x = 1\x00\n"},
        "empty": {"raw_code": ""},
    }
    runs = {name: await engine.start_run("code_review_agent", state) for name, state in sources.items()}
    final = {name: await engine.wait_finished(run_id, timeout=60) for name, run_id in runs.items()}

    assert {name: f["status"] for name, f in final.items()} == dict.fromkeys(sources, "completed"), final
    states = {name: f["state"] for name, f in final.items()}
    kinds = {name: {i["kind"] for i in s["issues"]} for name, s in states.items()}
    assert "too_deep_to_analyse" in kinds["deep_sum"]
    assert states["deep_sum"]["refactorings"][-1]["error"].startswith("source is too deeply nested to analyse")
    assert kinds["too_deep_to_parse"] == {"syntax_error"}
    assert "RecursionError" in states["too_deep_to_parse"]["syntax_error"]["message"]
    assert "too_deep_to_analyse" in kinds["elif_chain"]
    assert states["nul_byte"]["syntax_error"]["line"] == 1
    assert kinds["empty"] == set() and states["empty"]["quality_score"] == 100

    status, graphs = await engine.request("GET", "/graphs/code_review_agent")
    assert status == 200, graphs
    assert {n["name"]: n["timeout"] for n in graphs["nodes"]} == dict.fromkeys(
        ["extract_functions", "check_complexity", "detect_issues", "refactor"], NODE_TIMEOUT_SECONDS
    )


async def test_a_lone_surrogate_is_refused_before_any_node_runs(engine: InProcessEngine) -> None:
    # The engine cannot store or send it (msgpack and SQLite take UTF-8 only), so the API refuses it by path;
    # the nodes' own handling of it is covered in test_code_review_nodes.py.
    status, body = await engine.request(
        "POST", "/graph/run", json={"graph_id": "code_review_agent", "initial_state": {"raw_code": "x = '\ud800'"}}
    )
    assert status == 400, body
    assert "raw_code" in str(body)
