"""Graphs written in JSON: validation (every problem at once), conditions, compiling, Mermaid, state checks.

Everything runs in-process: a small superstep runner below plays the engine's part (each node of a
step on a copy of the state as the step began, updates applied in branch order with the reducers,
the router on the state after its own node's update, joins once all their sources have finished).
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from code_review_helpers import MESSY as SLOPPY
from jsonschema import Draft202012Validator

import awe.graphs.code_review  # registers the code_review.* tools
from awe.graph import END, CompiledGraph, Context, Graph, RetryPolicy, registered_tools
from awe.graph import json_graph as jg
from awe.graph.conditions import Condition, ConditionFailed, InvalidCondition
from awe.graph.json_graph import (
    GRAPH_ID_PATTERN,
    MAX_DEFINITION_BYTES,
    InvalidGraph,
    Problem,
    compile_definition,
    graph_schema,
    mermaid,
    state_problems,
    tools_used,
    validate,
)
from awe.graph.reducers import Write, apply_writes
from awe.graph.tools import Tool

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "code_review_agent.json"


# -- tools and definitions used below ------------------------------------------------


def step(state):
    return {"count": (state.get("count") or 0) + 1}


def scaled(state, *, factor):
    return {"value": state.get("value", 1) * factor}


def with_context(state, ctx):
    return {"seen_by": ctx.node}


async def later(state):
    await asyncio.sleep(0)
    return {"later": True}


def plan(state):
    return {"files": sorted(state["files"])}


def check(state, *, kind):
    return {"findings": [f"{kind}: {len(state['files'])} files look fine"], "cost": 1}


def summarise(state):
    return {"summary": f"{len(state['findings'])} findings for {state['cost']} units"}


SCALED_PARAMETERS = {
    "type": "object",
    "properties": {"factor": {"type": "integer"}},
    "required": ["factor"],
    "additionalProperties": False,
}
TOOLS = {
    "t.step": Tool("t.step", step, "Count a step.", None),
    "t.scaled": Tool("t.scaled", scaled, "Multiply the value.", SCALED_PARAMETERS),
    "t.context": Tool("t.context", with_context, "Record the node.", None),
    "t.later": Tool("t.later", later, "Async.", None),
    "t.plan": Tool("t.plan", plan, "", None),
    "t.check": Tool("t.check", check, "", {"type": "object", "properties": {"kind": {"type": "string"}}}),
    "t.summarise": Tool("t.summarise", summarise, "", None),
}


def base() -> dict[str, Any]:
    """A valid loop: a -> gate --(count >= 3)--> END, else -> a."""
    return {
        "graph_id": "counter",
        "entry_point": "a",
        "nodes": [
            {"name": "a", "tool": "t.step"},
            {"name": "gate", "tool": "t.scaled", "args": {"factor": 2}},
        ],
        "edges": [{"from": "a", "to": "gate"}],
        "conditional_edges": [{"from": "gate", "cases": [{"if": "state.count >= 3", "to": "END"}], "else": "a"}],
    }


def fan_out() -> dict[str, Any]:
    """The README's parallel example without the Send: plan -> style + security -> (join) summarise."""
    return {
        "graph_id": "review",
        "entry_point": "plan",
        "nodes": [
            {"name": "plan", "tool": "t.plan"},
            {"name": "style", "tool": "t.check", "args": {"kind": "style"}},
            {"name": "security", "tool": "t.check", "args": {"kind": "security"}},
            {"name": "summarise", "tool": "t.summarise"},
        ],
        "edges": [
            {"from": "plan", "to": "style"},
            {"from": "plan", "to": "security"},
            {"from": ["style", "security"], "to": "summarise"},
            {"from": "summarise", "to": "END"},
        ],
        "reducers": {"findings": "append", "cost": "add"},
    }


def fan_out_in_python() -> CompiledGraph:
    g = Graph("review", reducers={"findings": "append", "cost": "add"})
    g.add_node("plan", plan)
    g.add_node("style", lambda state: check(state, kind="style"))
    g.add_node("security", lambda state: check(state, kind="security"))
    g.add_node("summarise", summarise)
    g.add_edge("plan", "style").add_edge("plan", "security")
    g.add_edge(["style", "security"], "summarise").add_edge("summarise", END)
    return g.set_entry_point("plan").compile()


def problems_of(definition: Any, tools=TOOLS) -> list[Problem]:
    with pytest.raises(InvalidGraph) as caught:
        validate(definition, tools)
    assert caught.value.problems, "InvalidGraph without problems"
    return caught.value.problems


def assert_problem(problems: list[Problem], path: str, *words: str) -> None:
    """Some problem at ``path`` mentions every one of ``words``."""
    at_path = [p.message for p in problems if p.path == path]
    assert at_path, f"no problem at {path!r}; got {[(p.path, p.message) for p in problems]}"
    assert any(all(w in m for w in words) for m in at_path), f"{words} not in {at_path}"


# -- the in-process engine --------------------------------------------------------------


def run(graph: CompiledGraph, state: dict[str, Any], max_steps: int = 60) -> tuple[dict[str, Any], list[list[str]]]:
    """Run ``graph`` to its end as the engine would; returns the final state and the nodes of each step."""
    state, frontier, steps = copy.deepcopy(state), [graph.entry], []
    finished: dict[int, set[str]] = {i: set() for i in range(len(graph.joins))}
    while frontier:
        assert len(steps) < max_steps, f"the graph did not stop: {steps}"
        steps.append(frontier)
        writes = [Write(node, call(graph, node, state, len(steps))) for node in frontier]
        following: list[str] = []
        for write in writes:
            cond = graph.routers.get(write.branch)
            route = cond.router(apply_writes(state, [write], graph.reducers)) if cond else None
            following += graph.successors(write.branch, route)[0]
            following += fired_joins(graph, write.branch, finished)
        state = apply_writes(state, writes, graph.reducers)
        frontier = sorted({n for n in following if n != END})
    return state, steps


def call(graph: CompiledGraph, node: str, state: dict[str, Any], step_number: int) -> dict[str, Any]:
    spec = graph.nodes[node]
    ctx = Context(run_id="r", graph_id=graph.name, node=node, step=step_number, attempt=1, worker_id="w", log=None)
    result = spec.fn(copy.deepcopy(state), ctx) if spec.takes_context else spec.fn(copy.deepcopy(state))
    if spec.is_async:
        result = asyncio.run(result)
    assert isinstance(result, dict), f"{node} returned {result!r}"
    return result


def fired_joins(graph: CompiledGraph, node: str, finished: dict[int, set[str]]) -> list[str]:
    fired = []
    for i, join in enumerate(graph.joins):
        if node in join.sources:
            finished[i].add(node)
            if finished[i] == set(join.sources):
                fired.append(join.target)
                finished[i] = set()
    return fired


# -- valid definitions -----------------------------------------------------------------


def test_a_join_whose_sources_are_not_names_is_a_problem_not_a_crash():
    """Found by Schemathesis against POST /graph/create: a dict among a join's sources crashed the name checks."""
    definition = {
        "graph_id": "odd_join",
        "entry_point": "a",
        "nodes": [{"name": "a", "tool": "t.step"}],
        "edges": [{"from": [{}], "to": "END"}, {"from": ["a", 3], "to": "a"}, {"from": "a", "to": "END"}],
    }
    problems = problems_of(definition)
    assert_problem(problems, "/edges/0/from/0", "string")
    assert_problem(problems, "/edges/1/from/1", "string")


def test_validate_fills_in_the_defaults_and_is_idempotent():
    definition = base()
    definition["nodes"][1]["retry"] = {"max_attempts": 5}
    normalized = validate(definition, TOOLS)
    assert normalized["description"] == "" and normalized["reducers"] == {} and normalized["state_schema"] is None
    assert normalized["nodes"][0] == {"name": "a", "tool": "t.step", "args": {}, "retry": None, "timeout": None}
    assert normalized["nodes"][1]["retry"] == {
        "max_attempts": 5,
        "backoff": 0.5,
        "factor": 2.0,
        "max_backoff": 30.0,
        "jitter": True,
    }
    assert validate(normalized, TOOLS) == normalized
    assert definition == {**base(), "nodes": definition["nodes"]}, "validate must not change its argument"
    assert json.loads(json.dumps(normalized)) == normalized


def test_retry_and_timeout_map_onto_the_builder():
    definition = base()
    definition["nodes"][0] |= {"retry": {"max_attempts": 4, "backoff": 1, "jitter": False}, "timeout": 2.5}
    graph = compile_definition(definition, TOOLS)
    assert graph.nodes["a"].retry == RetryPolicy(max_attempts=4, backoff=1, jitter=False)
    assert graph.nodes["a"].timeout == 2.5
    assert graph.nodes["gate"].retry.max_attempts == 1 and graph.nodes["gate"].timeout is None


def test_a_loop_with_a_condition_runs_to_its_end():
    graph = compile_definition(base(), TOOLS)
    state, steps = run(graph, {"value": 1})
    assert state == {"value": 8, "count": 3}
    assert steps == [["a"], ["gate"]] * 3
    assert graph.routers["gate"].branches == {"state.count >= 3": END, "else": "a"}


def test_the_fan_out_with_a_join_matches_the_same_graph_in_python():
    from_json = compile_definition(fan_out(), TOOLS)
    from_python = fan_out_in_python()
    assert from_json.describe() == from_python.describe()
    assert from_json.fingerprint == from_python.fingerprint
    start = {"files": ["b.py", "a.py"]}
    (json_state, json_steps), (python_state, python_steps) = run(from_json, start), run(from_python, start)
    assert json_state == python_state
    assert json_state["findings"] == ["security: 2 files look fine", "style: 2 files look fine"]
    assert json_state["summary"] == "2 findings for 2 units"
    assert json_steps == python_steps == [["plan"], ["security", "style"], ["summarise"]]


def test_node_functions_keep_the_tools_kind_and_context():
    definition = base()
    definition["nodes"] += [{"name": "ctx", "tool": "t.context"}, {"name": "late", "tool": "t.later"}]
    definition["edges"] += [{"from": "a", "to": "ctx"}, {"from": "ctx", "to": "late"}, {"from": "late", "to": "END"}]
    graph = compile_definition(definition, TOOLS)
    kinds = {name: (spec.is_async, spec.takes_context) for name, spec in graph.nodes.items()}
    assert kinds == {"a": (False, False), "gate": (False, False), "ctx": (False, True), "late": (True, False)}
    assert asyncio.iscoroutinefunction(graph.nodes["late"].fn)
    assert call(graph, "ctx", {}, 1) == {"seen_by": "ctx"} and call(graph, "late", {}, 1) == {"later": True}


def test_each_call_gets_a_fresh_copy_of_the_args():
    def grab(state, *, box):
        box.append(1)
        return {"box": box}

    tools = {**TOOLS, "t.grab": Tool("t.grab", grab, "", None)}
    definition = {
        "graph_id": "g",
        "entry_point": "n",
        "nodes": [{"name": "n", "tool": "t.grab", "args": {"box": []}}],
        "edges": [{"from": "n", "to": "END"}],
    }
    node = compile_definition(definition, tools).nodes["n"].fn
    assert node({}) == {"box": [1]} and node({}) == {"box": [1]}


def test_tools_used_names_each_nodes_tool():
    assert tools_used(fan_out()) == {
        "plan": "t.plan",
        "style": "t.check",
        "security": "t.check",
        "summarise": "t.summarise",
    }
    assert tools_used({"nodes": [{"name": "x"}, "junk"]}) == {}


# -- every validation problem ---------------------------------------------------------


def mutated(change) -> dict[str, Any]:
    definition = base()
    change(definition)
    return definition


PROBLEMS = {
    "not an object": ([base()], "", ["JSON object", "an array"]),
    "wrong type": (mutated(lambda d: d.update(nodes={"a": 1})), "/nodes", ["an object", "expected array"]),
    "no nodes": (mutated(lambda d: d.update(nodes=[])), "/nodes", ["at least 1 item"]),
    "missing field": (mutated(lambda d: d.pop("entry_point")), "/entry_point", ["required", "missing"]),
    "missing node field": (mutated(lambda d: d["nodes"][0].pop("tool")), "/nodes/0/tool", ["required"]),
    "unknown field": (mutated(lambda d: d.update(colour="red")), "/colour", ["unknown field 'colour'", "graph_id"]),
    "unknown node field": (mutated(lambda d: d["nodes"][0].update(tol=1)), "/nodes/0/tol", ["unknown field", "tool"]),
    "graph id": (mutated(lambda d: d.update(graph_id="my graph!")), "/graph_id", ["my graph!", "letters, digits"]),
    "graph id digit": (mutated(lambda d: d.update(graph_id="9lives")), "/graph_id", ["starting with a letter"]),
    "graph id long": (mutated(lambda d: d.update(graph_id="g" * 65)), "/graph_id", ["1-64"]),
    "graph id newline": (mutated(lambda d: d.update(graph_id="counter\n")), "/graph_id", ["not allowed"]),
    "duplicate node": (
        mutated(lambda d: d["nodes"].append({"name": "a", "tool": "t.step"})),
        "/nodes/2/name",
        ["'a'", "used twice", "/nodes/0"],
    ),
    "node named END": (
        mutated(lambda d: d["nodes"].append({"name": "END", "tool": "t.step"})),
        "/nodes/2/name",
        ["reserved"],
    ),
    "unknown tool": (
        mutated(lambda d: d["nodes"][0].update(tool="t.stpe")),
        "/nodes/0/tool",
        ["unknown tool 't.stpe'", "did you mean 't.step'", "t.scaled"],
    ),
    "args type": (
        mutated(lambda d: d["nodes"][1].update(args={"factor": "2"})),
        "/nodes/1/args/factor",
        ["'t.scaled'", "a string", "integer"],
    ),
    "args missing": (mutated(lambda d: d["nodes"][1].update(args={})), "/nodes/1/args/factor", ["required"]),
    "args unknown": (
        mutated(lambda d: d["nodes"][1]["args"].update(speed=1)),
        "/nodes/1/args/speed",
        ["unknown field 'speed'", "factor"],
    ),
    "args against signature": (
        mutated(lambda d: d["nodes"][0].update(args={"speed": 1})),
        "/nodes/0/args",
        ["'t.step'", "unexpected keyword argument 'speed'", "(state)"],
    ),
    "args not an object": (mutated(lambda d: d["nodes"][0].update(args=[1])), "/nodes/0/args", ["expected object"]),
    "retry attempts": (
        mutated(lambda d: d["nodes"][0].update(retry={"max_attempts": 0})),
        "/nodes/0/retry/max_attempts",
        ["minimum 1"],
    ),
    "retry field": (
        mutated(lambda d: d["nodes"][0].update(retry={"retry_on": ["OSError"]})),
        "/nodes/0/retry/retry_on",
        ["unknown field", "max_attempts"],
    ),
    "timeout": (mutated(lambda d: d["nodes"][0].update(timeout=0)), "/nodes/0/timeout", ["more than 0"]),
    "timeout type": (mutated(lambda d: d["nodes"][0].update(timeout="1s")), "/nodes/0/timeout", ["expected number"]),
    "edge to unknown": (
        mutated(lambda d: d["edges"].append({"from": "a", "to": "gaet"})),
        "/edges/1/to",
        ["unknown node 'gaet'", "did you mean 'gate'"],
    ),
    "edge from unknown": (
        mutated(lambda d: d["edges"].append({"from": "zz", "to": "END"})),
        "/edges/1/from",
        ["unknown node 'zz'", "the nodes are a, gate"],
    ),
    "edge from END": (mutated(lambda d: d["edges"].append({"from": "END", "to": "a"})), "/edges/1/from", ["END"]),
    "edge missing to": (mutated(lambda d: d["edges"].append({"from": "a"})), "/edges/1/to", ["required"]),
    "duplicate edge": (
        mutated(lambda d: d["edges"].append({"from": "a", "to": "gate"})),
        "/edges/1",
        ["given twice", "/edges/0"],
    ),
    "join to END": (mutated(lambda d: d["edges"].append({"from": ["a", "gate"], "to": "END"})), "/edges/1/to", ["END"]),
    "join twice": (
        mutated(lambda d: d["edges"].append({"from": ["a", "a"], "to": "gate"})),
        "/edges/1/from/1",
        ["twice"],
    ),
    "join from unknown": (
        mutated(lambda d: d["edges"].append({"from": ["a", "b"], "to": "gate"})),
        "/edges/1/from/1",
        ["unknown node 'b'"],
    ),
    "case to unknown": (
        mutated(lambda d: d["conditional_edges"][0]["cases"][0].update(to="ned")),
        "/conditional_edges/0/cases/0/to",
        ["unknown node 'ned'"],
    ),
    "else unknown": (
        mutated(lambda d: d["conditional_edges"][0].update({"else": "b"})),
        "/conditional_edges/0/else",
        ["unknown node 'b'"],
    ),
    "else missing": (
        mutated(lambda d: d["conditional_edges"][0].pop("else")),
        "/conditional_edges/0/else",
        ["missing"],
    ),
    "no cases": (
        mutated(lambda d: d["conditional_edges"][0].update(cases=[])),
        "/conditional_edges/0/cases",
        ["least"],
    ),
    "two conditional edges": (
        mutated(
            lambda d: d["conditional_edges"].append({"from": "gate", "cases": [{"if": "1", "to": "a"}], "else": "a"})
        ),
        "/conditional_edges/1/from",
        ["already has a conditional edge", "/conditional_edges/0"],
    ),
    "unknown entry point": (
        mutated(lambda d: d.update(entry_point="start")),
        "/entry_point",
        ["entry point", "unknown node 'start'"],
    ),
    "entry point END": (mutated(lambda d: d.update(entry_point="END")), "/entry_point", ["cannot be END"]),
    "unreachable": (
        mutated(
            lambda d: (
                d["nodes"].append({"name": "island", "tool": "t.step"})
                or d["edges"].append({"from": "island", "to": "END"})
            )
        ),
        "/nodes/2",
        ["'island'", "cannot be reached from the entry point 'a'"],
    ),
    "dead end": (
        mutated(
            lambda d: (
                d["nodes"].append({"name": "stuck", "tool": "t.step"})
                or d["edges"].append({"from": "a", "to": "stuck"})
            )
        ),
        "/nodes/2",
        ["'stuck'", "no outgoing edge", '{"from": "stuck", "to": "END"}'],
    ),
    "only loops": (
        mutated(lambda d: d["conditional_edges"][0]["cases"][0].update(to="a")),
        "/nodes/0",
        ["END cannot be reached from node 'a'", "loops"],
    ),
    "condition syntax": (
        mutated(lambda d: d["conditional_edges"][0]["cases"][0].update({"if": "state.count >="})),
        "/conditional_edges/0/cases/0/if",
        ["does not parse"],
    ),
    "condition not allowed": (
        mutated(lambda d: d["conditional_edges"][0]["cases"][0].update({"if": "state.get('count')"})),
        "/conditional_edges/0/cases/0/if",
        ["method calls", "get(state, 'key', default)"],
    ),
    "condition not a string": (
        mutated(lambda d: d["conditional_edges"][0]["cases"][0].update({"if": True})),
        "/conditional_edges/0/cases/0/if",
        ["expected string"],
    ),
    "condition twice": (
        mutated(lambda d: d["conditional_edges"][0]["cases"].append({"if": "state.count >= 3", "to": "a"})),
        "/conditional_edges/0/cases/1/if",
        ["case 0", "never taken"],
    ),
    "unknown reducer": (
        mutated(lambda d: d.update(reducers={"findings": "concat"})),
        "/reducers/findings",
        ['"concat"', "append", "add", "merge"],
    ),
    "invalid state schema": (
        mutated(lambda d: d.update(state_schema={"type": "strnig"})),
        "/state_schema/type",
        ["not a valid JSON Schema"],
    ),
    "state schema not a schema": (
        mutated(lambda d: d.update(state_schema={"required": "raw_code"})),
        "/state_schema/required",
        ["not a valid JSON Schema", "raw_code"],
    ),
    "state schema remote ref": (
        mutated(lambda d: d.update(state_schema={"properties": {"x": {"$ref": "https://example.com/x.json"}}})),
        "/state_schema/properties/x/$ref",
        ["fetches nothing", "#/$defs/"],
    ),
    "state schema bad pattern": (
        mutated(lambda d: d.update(state_schema={"properties": {"x": {"pattern": "(unclosed"}}})),
        "/state_schema/properties/x/pattern",
        ["not a valid JSON Schema", "regex"],
    ),
    "not JSON data": (
        mutated(lambda d: d["nodes"][0].update(args={"n": float("nan")})),
        "",
        ["NaN", "plain JSON data"],
    ),
    "too deep": (
        mutated(lambda d: d["nodes"][0].update(args={"deep": json.loads("[" * 500 + "]" * 500)})),
        "",
        ["nested deeper than"],
    ),
    "state schema type": (mutated(lambda d: d.update(state_schema=[1])), "/state_schema", ["expected object"]),
    "description type": (mutated(lambda d: d.update(description=5)), "/description", ["an integer", "string"]),
}


@pytest.mark.parametrize(("definition", "path", "words"), PROBLEMS.values(), ids=PROBLEMS.keys())
def test_each_problem_is_reported_at_its_path(definition, path, words):
    assert_problem(problems_of(definition), path, *words)


def test_every_problem_is_reported_at_once():
    definition = base()
    definition["graph_id"] = "bad id"
    definition["nodes"][0]["tool"] = "t.nope"
    definition["nodes"][1]["args"] = {"factor": "x"}
    definition["nodes"].append({"name": "a", "tool": "t.step", "colour": 1})
    definition["edges"].append({"from": "gate", "to": "missing"})
    definition["conditional_edges"][0]["cases"][0]["if"] = "().__class__"
    definition["reducers"] = {"k": "sum"}
    definition["state_schema"] = {"type": 5}
    problems = problems_of(definition)
    paths = {p.path for p in problems}
    expected = {
        "/graph_id",
        "/nodes/0/tool",
        "/nodes/1/args/factor",
        "/nodes/2/name",
        "/nodes/2/colour",
        "/edges/1/to",
        "/conditional_edges/0/cases/0/if",
        "/reducers/k",
        "/state_schema/type",
    }
    assert expected <= paths, expected - paths
    assert len(problems) == len(set(problems)), "a problem reported twice"
    message = str(InvalidGraph(problems))
    assert message.startswith(f"invalid graph definition, {len(problems)} problems: ") and "more)" in message


def test_problems_come_in_document_order():
    definition = base()
    definition["nodes"] = [{"name": f"n{i}", "tool": "t.nope"} for i in range(12)]
    definition["entry_point"] = "n0"
    paths = [p.path for p in problems_of(definition) if p.path.endswith("/tool")]
    assert paths == [f"/nodes/{i}/tool" for i in range(12)]


def test_a_builder_rule_the_checks_miss_is_still_one_problem(monkeypatch):
    monkeypatch.setattr(jg, "_flow_problems", lambda definition: [])
    definition = base()
    definition["nodes"].append({"name": "island", "tool": "t.step"})
    definition["edges"].append({"from": "island", "to": "END"})
    (problem,) = problems_of(definition)
    assert problem.path == "" and "'island' cannot be reached" in problem.message


def test_compile_definition_refuses_an_invalid_definition():
    with pytest.raises(InvalidGraph) as caught:
        compile_definition(mutated(lambda d: d.update(entry_point="nowhere")), TOOLS)
    assert_problem(caught.value.problems, "/entry_point", "unknown node 'nowhere'")


def test_messages_do_not_repeat_a_large_value():
    problems = problems_of(mutated(lambda d: d.update(description=["x" * 10_000])))
    assert all(len(p.message) < 400 for p in problems)


def test_problem_describes_itself_as_json():
    assert Problem("/nodes/0", "bad").describe() == {"path": "/nodes/0", "message": "bad"}


# -- conditions ------------------------------------------------------------------------

REFUSED_CONDITIONS = {
    "9**9**9**9": "too large",
    "'a'*10**10": "too large",
    "[1] * 10**6": "too large",
    "[[1] * 10**5] * 10**5 == [[1] * 10**5] * 10**5": "too large",
    "str([1] * 10**5)": "str() converts numbers",
    "2 ** 100000": "too large",
    "round(5, -10**9)": "too large",
    "().__class__.__bases__": "'_' are never read",
    "state.__class__": "'_' are never read",
    "state._private": "'_' are never read",
    "__import__('os')": "unknown function",
    "[x for x in state.items]": "comprehensions",
    "{k: 1 for k in state.items}": "comprehensions",
    "any(x for x in state.items)": "generator expressions",
    "lambda: 1": "lambdas",
    "(x := 1)": ":=",
    "f'{state.a}'": "f-strings",
    "state.get('a')": "method calls",
    "state.items.pop()": "method calls",
    "open('/etc/passwd')": "unknown function 'open'",
    "getattr(state, 'a')": "unknown function 'getattr'",
    "type(state)": "unknown function 'type'",
    "len": "can only be called",
    "(1)(2)": "cannot be called",
    "max(*state.items)": "unpacks only inside a list",
    "(*state.items,)": "unpacks only inside a list",
    "state['f'](1)": "cannot be called",
    "os.system": "unknown name 'os'",
    "'%0999999999d' % 1": "always fails",
    "1 / 0": "always fails",
    "len(state.items, key=len)": "keyword arguments",
    "b'bytes'": "not allowed",
    "state.a ==": "does not parse",
    "": "empty",
    "state.a and " * 50 + "1": "at most 500",
    "+".join(["state.a"] * 60): "syntax nodes",
}


@pytest.mark.parametrize(("text", "reason"), REFUSED_CONDITIONS.items(), ids=range(len(REFUSED_CONDITIONS)))
def test_dangerous_conditions_are_refused_when_validated(text, reason):
    started = time.perf_counter()
    with pytest.raises(InvalidCondition) as caught:
        Condition.parse(text)
    assert any(reason in p for p in caught.value.problems), caught.value.problems
    assert time.perf_counter() - started < 1
    definition = mutated(lambda d: d["conditional_edges"][0]["cases"][0].update({"if": text}))
    assert_problem(problems_of(definition), "/conditional_edges/0/cases/0/if", reason)


STOPPED_AT_RUN_TIME = [
    ("state.n ** state.m", {"n": 9, "m": 10**9}, "NumberTooHigh"),
    ("state.s * state.k", {"s": "a", "k": 10**10}, "IterableTooLong"),
    ("state.a * state.a * state.a", {"a": 2**2000}, "NumberTooHigh"),
    ("state.s + state.s", {"s": "a" * 60_000}, "IterableTooLong"),
    ("[state.s] * 100 == [state.t] * 100", {"s": "a" * 10_000, "t": "a" * 10_000}, "IterableTooLong"),
    ("state.items * 2", {"items": [{"a": 1}]}, "IterableTooLong"),
    ("str(state.items)", {"items": [1]}, "str() converts numbers"),
    ("state.fmt % state.n", {"fmt": "%0999999999d", "n": 1}, "formats strings"),
    ("round(state.x, state.d)", {"x": 5, "d": -(10**9)}, "NumberTooHigh"),
    ("state.missing > 3", {}, "TypeError"),
    ("state.items[5]", {"items": [1]}, "IndexError"),
    ("state.meta['x']", {"meta": {}}, "KeyError"),
    ("state.items.first", {"items": [1]}, "reads a key of an object, but the value is an array"),
    ("get(state.n, 1)", {"n": 5}, "get() reads a key"),
]


@pytest.mark.parametrize(("text", "state", "error"), STOPPED_AT_RUN_TIME, ids=[t for t, _, _ in STOPPED_AT_RUN_TIME])
def test_conditions_that_cannot_be_computed_fail_cleanly_naming_the_condition(text, state, error):
    condition = Condition.parse(text)
    started = time.perf_counter()
    with pytest.raises(ConditionFailed) as caught:
        condition.holds(state)
    assert time.perf_counter() - started < 1
    assert repr(text) in str(caught.value) and error in str(caught.value)


CONDITIONS = [
    ("state.done", {}, False),
    ("state.done", {"done": True}, True),
    ("not state.done", {}, True),
    ("state.missing is None", {}, True),
    ("state.items[-1] == 3", {"items": [1, 2, 3]}, True),
    ("state.items", {"items": []}, False),
    ("state.meta.inner.deep", {"meta": {"inner": {}}}, False),
    ("state.meta['inner']['deep'] == 1", {"meta": {"inner": {"deep": 1}}}, True),
    ("state.score >= state.threshold and state.iteration < 5", {"score": 90, "threshold": 80, "iteration": 2}, True),
    ("get(state, 'threshold', 80) <= 80", {}, True),
    ("get(state.items, 7, 'none') == 'none'", {"items": [1]}, True),
    ("len(state.items) == 2 and max(state.items) == 5 and min(state.items) == 1", {"items": [1, 5]}, True),
    ("abs(state.x) == round(2.4) and int('3') == 3 and float(state.x) == -2.0", {"x": -2}, True),
    ("state.kind in ['a', 'b'] and state.kind not in ('c',)", {"kind": "b"}, True),
    ("'err' in state.log[0] and str(state.n) == '5'", {"log": ["an error"], "n": 5}, True),
    ("(state.n % 2 == 0) if state.n is not None else False", {"n": 4}, True),
    ("state.items[1:] == [2, 3] and [*state.items, 4][-1] == 4", {"items": [1, 2, 3]}, True),
    ("{'a': 1}['a'] == 1 and {1, 2} and bool(state.x)", {"x": 1}, True),
    ("2 ** 10 == 1024 and 'ab' * 2 == 'abab' and state.n // 3 == 1", {"n": 5}, True),
]


@pytest.mark.parametrize(("text", "state", "expected"), CONDITIONS, ids=[t for t, _, _ in CONDITIONS])
def test_conditions_read_the_state(text, state, expected):
    assert Condition.parse(text).holds(state) is expected


def test_a_failing_condition_fails_the_node_naming_its_edge():
    definition = base()
    definition["conditional_edges"][0]["cases"][0]["if"] = "state.count > state.limit"
    router = compile_definition(definition, TOOLS).routers["gate"].router
    with pytest.raises(ConditionFailed, match=r"node 'gate'.*'state.count > state.limit' failed: TypeError"):
        router({"count": 1})
    assert router({"count": 1, "limit": 5}) == "else"
    assert router({"count": 9, "limit": 5}) == "state.count > state.limit"


def test_cases_are_tried_in_order():
    definition = base()
    definition["conditional_edges"][0]["cases"] = [
        {"if": "state.count >= 3", "to": "END"},
        {"if": "state.count >= 1", "to": "a"},
    ]
    router = compile_definition(definition, TOOLS).routers["gate"].router
    assert [router({"count": n}) for n in (0, 1, 5)] == ["else", "state.count >= 1", "state.count >= 3"]


# -- the Code Review Agent in JSON -------------------------------------------------------

CLEAN = 'def add(a, b):\n    """Add two numbers."""\n    return a + b\n'
UNFIXABLE = "def shout(a, b, c, d, e, f, g):\n    print(a)\n    print(b)\n"
AGENT_INPUTS = {
    "messy code that loops": {"raw_code": SLOPPY},
    "clean code": {"raw_code": CLEAN},
    "syntax error": {"raw_code": "def broken(:\n    pass\n"},
    "max iterations reached": {"raw_code": SLOPPY, "max_iterations": 1, "quality_threshold": 101},
    "max iterations as null": {"raw_code": SLOPPY, "max_iterations": None},
    "threshold zero": {"raw_code": UNFIXABLE, "quality_threshold": 0},
    "threshold as text": {"raw_code": UNFIXABLE, "quality_threshold": "99"},
    "unfixable code": {"raw_code": UNFIXABLE, "quality_threshold": 100, "max_iterations": 10},
    "the seed": {"raw_code": "def complex_function(): ... "},
}


def example() -> dict[str, Any]:
    return json.loads(EXAMPLE.read_text())


@pytest.mark.parametrize("start", AGENT_INPUTS.values(), ids=AGENT_INPUTS.keys())
def test_the_json_code_review_agent_ends_in_the_same_state_as_the_python_one(start):
    python_agent = awe.graphs.code_review.code_review_agent.compile()
    json_agent = compile_definition(example(), registered_tools())
    python_state, python_steps = run(python_agent, start)
    json_state, json_steps = run(json_agent, start)
    assert json_state == python_state
    assert json_steps == python_steps
    assert python_state["report"].startswith("# Code review")


def test_the_agent_inputs_cover_every_way_out_of_the_loop():
    """Each reason to stop is taken by some input above (so the equality test means something)."""
    json_agent = compile_definition(example(), registered_tools())
    taken = set()
    for start in AGENT_INPUTS.values():
        state, steps = run(json_agent, start)
        taken.add(state["stop_reason"])
        taken.add("loops" if len(steps) > 5 else "one pass")
    assert {"threshold_reached", "nothing_to_fix", "max_iterations", "loops", "one pass"} <= taken


def test_the_example_is_valid_and_small():
    text = EXAMPLE.read_text()
    assert len(text.encode()) < MAX_DEFINITION_BYTES
    normalized = validate(json.loads(text), registered_tools())
    assert normalized["graph_id"] == "code_review_json"
    assert set(tools_used(normalized).values()) == {
        f"code_review.{n}"
        for n in ("extract_functions", "check_complexity", "detect_issues", "refactor", "llm_review", "write_report")
    }
    assert not list(Draft202012Validator(graph_schema()).iter_errors(json.loads(text)))


# -- state_schema -----------------------------------------------------------------------


def test_state_problems_without_a_schema():
    assert state_problems(base(), {"anything": 1}) == []
    assert state_problems(validate(base(), TOOLS), {}) == []


def test_state_problems_with_a_schema():
    definition = example()
    assert state_problems(definition, {"raw_code": "x = 1", "quality_threshold": 90}) == []
    assert state_problems(definition, {"files": {"pkg/a.py": "x = 1"}, "llm_model": "m"}) == []
    problems = state_problems(definition, {"quality_threshold": "high"})
    assert_problem(problems, "", "is not valid under any of the given schemas")  # neither raw_code nor files
    assert_problem(problems, "/quality_threshold", '"high" is a string; expected number or null')
    assert_problem(state_problems(definition, {"raw_code": 5}), "/raw_code", "expected string")


def test_state_problems_never_fetch_a_reference():
    definition = {"state_schema": {"$ref": "http://127.0.0.1:9/schema.json"}}
    (problem,) = state_problems(definition, {})
    assert problem.path == "" and "http://127.0.0.1:9/schema.json" in problem.message


def test_state_problems_of_an_unchecked_schema_with_a_bad_pattern():
    (problem,) = state_problems({"state_schema": {"properties": {"x": {"pattern": "("}}}}, {"x": "a"})
    assert problem.path == "" and "does not compile" in problem.message


# -- Mermaid ------------------------------------------------------------------------


def node_ids(text: str) -> dict[str, str]:
    """Label -> id of each node line ``n3["label"]``."""
    return {label: node_id for node_id, label in re.findall(r'^\s+(n\d+)\["(.*)"\]$', text, re.M)}


def test_mermaid_of_a_python_graph_with_a_loop_a_router_a_join_and_end():
    def noop(state):
        return None

    def route(state):
        return "again"

    g = Graph("drawn")
    for name in ("start", "left", "right", 'say "hi"]\n%% end', "end"):
        g.add_node(name, noop)
    g.add_edge("start", "left").add_edge("start", "right")
    g.add_edge(["left", "right"], 'say "hi"]\n%% end')
    g.add_conditional_edge('say "hi"]\n%% end', route, {"again": "start", "done <b>": "end"})
    g.add_edge("end", END).set_entry_point("start")
    text = mermaid(g.compile())
    ids = node_ids(text)
    assert text.startswith("flowchart TD\n")
    assert set(ids) == {"start", "left", "right", "say #34;hi#34;]#10;#37;#37; end", "end"}
    quoted = ids["say #34;hi#34;]#10;#37;#37; end"]
    assert f"{ids['start']} --> {ids['left']}" in text and f"{ids['start']} --> {ids['right']}" in text
    assert f"{ids['left']} --> join0" in text and f"{ids['right']} --> join0" in text and f"join0 --> {quoted}" in text
    assert f'{quoted} -.->|"again"| {ids["start"]}' in text
    assert f'{quoted} -.->|"done #60;b#62;"| {ids["end"]}' in text
    assert f"{ids['end']} --> __end__" in text and f"__start__ --> {ids['start']}" in text
    assert all(line.count('"') % 2 == 0 for line in text.splitlines()), "a label broke out of its quotes"


def test_mermaid_of_a_json_graph_labels_branches_with_their_conditions():
    text = mermaid(compile_definition(example(), registered_tools()))
    ids = node_ids(text)
    assert set(ids) == {
        "extract_functions",
        "check_complexity",
        "detect_issues",
        "refactor",
        "llm_review",
        "write_report",
    }
    assert f"{ids['refactor']} --> {ids['extract_functions']}" in text  # the loop
    assert f'{ids["detect_issues"]} -.->|"state.stop_reason"| {ids["llm_review"]}' in text
    assert f'{ids["detect_issues"]} -.->|"else"| {ids["refactor"]}' in text
    assert f"{ids['write_report']} --> __end__" in text


def test_mermaid_draws_a_json_join():
    text = mermaid(compile_definition(fan_out(), TOOLS))
    ids = node_ids(text)
    assert f"{ids['style']} --> join0" in text and f"join0 --> {ids['summarise']}" in text
    assert f"{ids['summarise']} --> __end__" in text


# -- the package ------------------------------------------------------------------------


def test_the_schema_ships_in_the_package_and_is_a_valid_schema():
    schema = graph_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["required"] == ["graph_id", "entry_point", "nodes"]


@pytest.mark.parametrize("graph_id", ["a", "code_review.v2-final", "g" * 64, "g" * 65, "9a", "a b", "a\n", "é", ""])
def test_the_schema_and_the_pattern_agree_on_graph_ids(graph_id):
    by_pattern = GRAPH_ID_PATTERN.fullmatch(graph_id) is not None
    definition = {**base(), "graph_id": graph_id}
    by_schema = not any(p.path == "/graph_id" for p in jg._check(definition, TOOLS)[2])
    assert by_schema == by_pattern


def test_the_language_layer_imports_neither_zeromq_nor_sqlite_nor_aiohttp():
    check = (
        "import awe.graph.json_graph, awe.graph.conditions, awe.graph.mermaid, sys; "
        "loaded = [m for m in ('zmq', 'aiosqlite', 'aiohttp') if m in sys.modules]; assert not loaded, loaded"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_a_large_definition_validates_quickly():
    nodes = [{"name": f"n{i}", "tool": "t.step"} for i in range(300)]
    edges = [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(299)]
    condition = " and ".join(["state.count >= get(state, 'limit', 3) + 1 - 1"] * 8)
    conditional = [
        {
            "from": "n299",
            "cases": [{"if": f"{condition} or state.x == {j}", "to": "END"} for j in range(40)],
            "else": "n0",
        }
    ]
    definition = {
        "graph_id": "big",
        "entry_point": "n0",
        "nodes": nodes,
        "edges": edges,
        "conditional_edges": conditional,
    }
    assert len(json.dumps(definition)) < MAX_DEFINITION_BYTES
    started = time.perf_counter()
    compile_definition(definition, TOOLS)
    assert time.perf_counter() - started < 2
