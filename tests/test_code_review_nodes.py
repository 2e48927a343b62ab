"""The built-in code_review_agent graph, node by node, in-process (no engine)."""

from __future__ import annotations

import ast
import copy
import inspect
import json
import textwrap
import time

import pytest
from radon.complexity import cc_visit

from awe.graph import END
from awe.graphs import code_review
from awe.graphs.code_review import (
    check_complexity,
    code_review_agent,
    detect_issues,
    extract_functions,
    quality_gate,
    quality_score,
    refactor,
)

SEED = "def complex_function(): ... "

SLOPPY = textwrap.dedent(
    """
    def collect(item, bucket=[]):
        bucket.append(item)
        return bucket


    def load(path, options={}, *, seen=set()):
        try:
            value = int(path)
        except:
            value = None
        options["value"] = value
        seen.add(path)
        return options, seen
    """
)


def apply(state: dict, node) -> dict:
    """Run a node on a copy of the state and apply its updates, as the engine would."""
    updates = node(copy.deepcopy(state))
    if updates is not None:
        state.update(updates)
    return state


def review_pass(state: dict) -> dict:
    for node in (extract_functions, check_complexity, detect_issues):
        apply(state, node)
    return state


def kinds(state: dict, function: str | None = None) -> set[str]:
    return {i["kind"] for i in state["issues"] if function is None or i["function"] == function}


def complex_source(branches: int) -> str:
    body = "".join(f"    if x == {i}:\n        return {i}\n" for i in range(branches))
    return f'def branchy(x):\n    """Many branches."""\n{body}    return -1\n'


def elif_chain(branches: int) -> str:
    body = "".join(f"    elif x == {i}:\n        return {i}\n" for i in range(1, branches))
    return f'def dispatch(x):\n    """One long elif chain."""\n    if x == 0:\n        return 0\n{body}'


def run_agent(state: dict) -> list[str]:
    """Run the compiled graph in-process, following its own edges and router; return the nodes run in order."""
    graph = code_review_agent.compile()
    node, steps = graph.entry, []
    while node != END:
        steps.append(node)
        apply(state, graph.nodes[node].fn)
        router = graph.routers.get(node)
        (node,), _ = graph.successors(node, router.router(state) if router else None)
        assert len(steps) < 50, f"the agent did not stop: {steps}"
    return steps


def assert_well_formed(state: dict) -> None:
    """The end state of a review: every key present, plain JSON, a bounded score and a summary."""
    for key in ("code", "iteration", "functions", "syntax_error", "complexity", "maintainability", "issues"):
        assert key in state, key
    assert 0 <= state["quality_score"] <= 100
    assert state["summary"] and state["history"][-1]["quality_score"] == state["quality_score"]
    assert json.loads(json.dumps(state)) == state


# Valid Python that radon and ast.unparse cannot handle: they recurse once per `+` (ast.parse copes).
DEEP_SUM = "def f():\n    return " + "1+" * 1000 + "1"


# -- first pass --------------------------------------------------------------


def test_seed_input_yields_complex_function_and_a_score():
    state = review_pass({"raw_code": SEED})

    assert state["code"] == SEED
    assert state["iteration"] == 1
    assert state["syntax_error"] is None
    assert [f["name"] for f in state["functions"]] == ["complex_function"]
    fn = state["functions"][0]
    assert fn["qualname"] == "complex_function" and fn["lineno"] == 1 and fn["args"] == []
    assert fn["has_docstring"] is False
    assert state["complexity"] == {"complex_function": 1}
    assert 0 <= state["maintainability"] <= 100
    assert kinds(state) == {"missing_docstring"}
    assert state["quality_score"] == 100 - code_review.SEVERITY_WEIGHTS["low"]
    assert state["history"] == [{"iteration": 1, "quality_score": state["quality_score"], "issues": 1}]
    assert state["summary"].startswith(f"1 functions, 1 issues, quality {state['quality_score']}/100")
    assert quality_gate(state) == "done"  # 97 >= default threshold 80


def test_functions_record_methods_with_qualified_names():
    src = textwrap.dedent(
        '''
        class Shop:
            """A shop."""

            def total(self, prices, *extra, tax=0.2, **kw):
                """Sum."""
                def rounded(v):
                    return round(v, 2)
                return rounded(sum(prices) * (1 + tax))
        '''
    )
    state = review_pass({"raw_code": src})
    by_name = {f["qualname"]: f for f in state["functions"]}

    assert set(by_name) == {"Shop.total", "Shop.total.rounded"}
    total = by_name["Shop.total"]
    assert total["name"] == "total" and total["is_method"] is True and total["has_docstring"] is True
    assert total["args"] == ["self", "prices", "*extra", "tax", "**kw"]
    assert (total["lineno"], total["end_lineno"], total["lines"]) == (5, 9, 5)
    assert by_name["Shop.total.rounded"]["is_method"] is False
    assert set(state["complexity"]) == {"Shop.total", "Shop.total.rounded"}


def test_nodes_do_not_mutate_their_input_and_produce_json():
    state = {"raw_code": SLOPPY}
    for node in (extract_functions, check_complexity, detect_issues, refactor):
        before = copy.deepcopy(state)
        updates = node(state)
        assert state == before, f"{node.__name__} mutated its input"
        state.update(updates)
    assert json.loads(json.dumps(state)) == state


def test_missing_raw_code_is_a_clear_error():
    with pytest.raises(ValueError, match="raw_code"):
        extract_functions({})


# -- issues ---------------------------------------------------------------------


def test_bare_except_mutable_default_and_missing_docstrings_are_fixed_by_refactor():
    state = review_pass({"raw_code": SLOPPY})
    assert kinds(state, "collect") == {"mutable_default", "missing_docstring"}
    assert kinds(state, "load") == {"mutable_default", "bare_except", "missing_docstring"}
    assert sum(i["kind"] == "mutable_default" for i in state["issues"]) == 3  # bucket, options, seen
    before = state["quality_score"]
    assert quality_gate(state) == "refactor"

    apply(state, refactor)
    changes = state["refactorings"][-1]
    assert changes["iteration"] == 1
    assert sorted((c["kind"], c["function"]) for c in changes["changes"]) == [
        ("bare_except", "load"),
        ("missing_docstring", "collect"),
        ("missing_docstring", "load"),
        ("mutable_default", "collect"),
        ("mutable_default", "load"),
        ("mutable_default", "load"),
    ]
    assert "except:" not in state["code"] and "except Exception:" in state["code"]
    assert '"""TODO: document collect."""' in state["code"]

    review_pass(state)
    assert state["iteration"] == 2
    assert kinds(state) & {"bare_except", "mutable_default", "missing_docstring"} == set()
    assert state["quality_score"] > before
    assert [h["iteration"] for h in state["history"]] == [1, 2]
    assert state["history"][1]["issues"] < state["history"][0]["issues"]
    assert "2 placeholder docstrings" in state["summary"]


def test_refactored_code_keeps_behaviour_without_shared_defaults():
    state = review_pass({"raw_code": SLOPPY})
    apply(state, refactor)
    old, new = {}, {}
    exec(SLOPPY, old)
    exec(state["code"], new)

    assert old["collect"](1) == [1] and old["collect"](2) == [1, 2]  # the bug
    assert new["collect"](1) == [1] and new["collect"](2) == [2]  # fixed
    assert new["collect"](3, [0]) == [0, 3]
    assert new["load"]("7") == ({"value": 7}, {"7"})
    assert new["load"]("x") == ({"value": None}, {"x"})
    assert new["load"]("y") == ({"value": None}, {"y"})  # no state carried over
    collect = ast.parse(state["code"]).body[0]
    assert ast.get_docstring(collect) == "TODO: document collect."
    assert isinstance(collect.body[1], ast.If)  # the None guard sits right after the docstring


def test_refactor_keeps_an_existing_docstring_first_and_leaves_unsafe_defaults():
    src = 'def f(a, b=[], c=[a]):\n    """Doc."""\n    return b, c\n'
    state = review_pass({"raw_code": src})
    apply(state, refactor)
    tree = ast.parse(state["code"]).body[0]

    assert ast.get_docstring(tree) == "Doc."
    assert ast.unparse(tree.args) == "a, b=None, c=[a]"
    assert ast.unparse(tree.body[1]) == "if b is None:\n    b = []"
    review_pass(state)
    assert [i["message"] for i in state["issues"] if i["kind"] == "mutable_default"] == [
        "parameter 'c' has a mutable default, shared by all calls"
    ]


def test_refactor_with_nothing_to_fix_leaves_the_code_alone():
    src = 'def f(x):  # a comment refactor would lose\n    """Doc."""\n    return x\n'
    state = review_pass({"raw_code": src})
    apply(state, refactor)
    assert state["code"] == src
    assert state["refactorings"] == [{"iteration": 1, "changes": []}]


def test_high_complexity_is_flagged():
    state = review_pass({"raw_code": complex_source(11)})
    assert state["complexity"]["branchy"] == 12
    flagged = [i for i in state["issues"] if i["kind"] == "high_complexity"]
    assert flagged == [
        {
            "function": "branchy",
            "line": 1,
            "kind": "high_complexity",
            "message": "cyclomatic complexity 12 > 10",
            "severity": "high",
        }
    ]

    state = review_pass({"raw_code": complex_source(9)})
    assert state["complexity"]["branchy"] == 10
    assert "high_complexity" not in kinds(state)


def test_long_functions_many_parameters_prints_and_module_level_bare_except():
    long_body = "".join(f"    v{i} = {i}\n" for i in range(55))
    src = (
        'def long_one():\n    """Long."""\n' + long_body + "    return 0\n\n\n"
        'def wide(a, b, c, d, e, f):\n    """Wide."""\n    print(a)\n\n\n'
        "class K:\n"
        '    """K."""\n'
        '    def ok(self, a, b, c, d, e):\n        """Five plus self."""\n\n\n'
        "try:\n    import os\nexcept:\n    os = None\n"
    )
    state = review_pass({"raw_code": src})

    assert kinds(state, "long_one") == {"long_function"}
    assert kinds(state, "wide") == {"too_many_parameters", "print_call"}
    assert kinds(state, "K.ok") == set()  # self is not counted
    bare = [i for i in state["issues"] if i["kind"] == "bare_except"]
    assert [(i["function"], i["severity"]) for i in bare] == [("<module>", "high")]


def test_deep_nesting_is_flagged_but_elif_chains_are_not():
    deep = textwrap.dedent(
        '''
        def deep(xs):
            """Five levels."""
            for x in xs:
                if x:
                    while x:
                        with open(x) as fh:
                            try:
                                fh.read()
                            finally:
                                x = 0
        '''
    )
    four = textwrap.dedent(
        '''
        def four(xs):
            """Four levels, and an elif chain."""
            for x in xs:
                if x:
                    while x:
                        if x == 1:
                            x = 0
                        elif x == 2:
                            x = 1
                        elif x == 3:
                            x = 2
                        else:
                            x = 3
        '''
    )
    state = review_pass({"raw_code": deep})
    nesting = [i for i in state["issues"] if i["kind"] == "deep_nesting"]
    assert [(i["function"], i["line"]) for i in nesting] == [("deep", 8)]
    assert "5 levels" in nesting[0]["message"]

    assert "deep_nesting" not in kinds(review_pass({"raw_code": four}))


# -- syntax errors and the gate -----------------------------------------------------


def test_syntax_error_is_recorded_and_ends_the_run():
    state = review_pass({"raw_code": "def broken(:\n    pass\n", "quality_threshold": 50, "max_iterations": 10})

    assert state["syntax_error"]["line"] == 1
    assert state["syntax_error"]["message"]
    assert state["functions"] == []
    assert state["complexity"] == {} and state["maintainability"] is None
    assert state["quality_score"] == 0
    assert kinds(state) == {"syntax_error"}
    assert "syntax error at line 1" in state["summary"]
    assert quality_gate(state) == "done"  # below the threshold, iterations left: done anyway


def test_gate_compares_the_score_with_the_threshold():
    state = {"quality_score": 79, "iteration": 1}
    assert quality_gate(state) == "refactor"  # default threshold 80
    assert quality_gate({**state, "quality_score": 80}) == "done"
    assert quality_gate({**state, "quality_threshold": 70}) == "done"
    assert quality_gate({**state, "quality_threshold": 95, "quality_score": 90}) == "refactor"


def test_gate_stops_at_max_iterations():
    state = {"quality_score": 10, "quality_threshold": 80}
    assert quality_gate({**state, "iteration": 2}) == "refactor"  # default max_iterations 3
    assert quality_gate({**state, "iteration": 3}) == "done"
    assert quality_gate({**state, "iteration": 1, "max_iterations": 1}) == "done"


def test_the_loop_stops_once_a_refactor_pass_finds_nothing_to_fix():
    # Complexity is reported, never fixed, so the score cannot reach 99 and refactoring cannot help.
    state = {"raw_code": complex_source(11), "quality_threshold": 99, "max_iterations": 4}
    routes = []
    while True:
        review_pass(state)
        routes.append(quality_gate(state))
        if routes[-1] == "done":
            break
        apply(state, refactor)
        assert len(routes) < 10, "the loop did not stop"

    assert routes == ["refactor", "done"]
    assert state["iteration"] == 2
    assert [h["iteration"] for h in state["history"]] == [1, 2]
    assert [r["changes"] for r in state["refactorings"]] == [[]]
    assert "high_complexity" in kinds(state)


# -- hostile input --------------------------------------------------------------------


def test_code_too_deep_for_radon_is_a_finding_not_a_crash():
    state = review_pass({"raw_code": DEEP_SUM})

    assert state["syntax_error"] is None
    assert [f["name"] for f in state["functions"]] == ["f"]
    assert state["complexity"] == {} and state["maintainability"] is None
    assert [(e["analysis"], e["error"]) for e in state["analysis_errors"]] == [
        ("radon cc_visit", "RecursionError"),
        ("radon mi_visit", "RecursionError"),
    ]
    deep = [i for i in state["issues"] if i["kind"] == "too_deep_to_analyse"]
    assert [(i["function"], i["severity"]) for i in deep] == [("<module>", "high")]
    assert deep[0]["message"] == (
        "source is too deeply nested to analyse: radon cc_visit raised RecursionError; "
        "radon mi_visit raised RecursionError"
    )
    assert state["quality_score"] == 100 - 15 - 3  # the finding, and f's missing docstring
    assert_well_formed(state)


def test_refactor_keeps_code_it_cannot_unparse_and_says_why():
    state = review_pass({"raw_code": DEEP_SUM})
    apply(state, refactor)  # f needs a docstring, but ast.unparse cannot write this tree back

    assert state["code"] == DEEP_SUM
    [record] = state["refactorings"]
    assert record["changes"] == []
    assert record["error"].startswith("source is too deeply nested to analyse: ast.unparse raised RecursionError")
    review_pass(state)
    assert quality_gate(state) == "done"  # the pass changed nothing: another would review the same code
    assert "the last refactor pass changed nothing: source is too deeply nested" in state["summary"]


def test_the_agent_completes_on_code_too_deep_to_analyse():
    state = {"raw_code": DEEP_SUM, "quality_threshold": 99}
    steps = run_agent(state)

    assert steps == ["extract_functions", "check_complexity", "detect_issues", "refactor", *steps[:3]]
    assert "too_deep_to_analyse" in kinds(state)
    assert state["refactorings"][-1]["changes"] == []
    assert_well_formed(state)


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("x = " + "-" * 5000 + "1", "RecursionError: maximum recursion depth exceeded during ast construction"),
        ("f = " + "lambda: " * 3000 + "1", "MemoryError"),
    ],
    ids=["recursion", "memory"],
)
def test_code_too_deep_for_the_parser_is_reported_like_a_syntax_error(source, error):
    state = {"raw_code": source, "max_iterations": 5}
    steps = run_agent(state)

    assert steps == ["extract_functions", "check_complexity", "detect_issues"]
    assert state["syntax_error"] == {
        "message": f"source is too deeply nested to analyse: the Python parser raised {error}",
        "line": None,
    }
    assert kinds(state) == {"syntax_error"} and state["quality_score"] == 0
    assert (
        f"(syntax error: source is too deeply nested to analyse: the Python parser raised {error})"
        in (state["summary"])
    )
    assert_well_formed(state)


def test_brackets_nested_past_the_parser_limit_are_a_syntax_error():
    state = {"raw_code": "x = " + "[" * 1000 + "]" * 1000}
    run_agent(state)

    assert state["syntax_error"] == {"message": "too many nested parentheses", "line": 1}
    assert_well_formed(state)


def test_a_long_elif_chain_is_reviewed_without_recursing():
    # 1500 branches: the parser builds the tree, this module walks it, radon gives up on it.
    state = review_pass({"raw_code": elif_chain(1500)})

    assert [f["qualname"] for f in state["functions"]] == ["dispatch"]
    assert "too_deep_to_analyse" in kinds(state)
    assert "deep_nesting" not in kinds(state)  # elif stays at the level of its if
    long = [i for i in state["issues"] if i["kind"] == "long_function"]
    assert [i["message"] for i in long] == ["3002 lines > 50"]
    assert_well_formed(state)


def test_a_chain_radon_can_measure_still_gets_its_complexity():
    state = review_pass({"raw_code": elif_chain(200)})
    assert state["complexity"] == {"dispatch": 201}
    assert state["analysis_errors"] == []
    assert "too_deep_to_analyse" not in kinds(state)


@pytest.mark.parametrize("source", ["", "   \n\t\n  ", "\n\n\n"], ids=["empty", "whitespace", "newlines"])
def test_empty_source_is_a_clean_review(source):
    state = {"raw_code": source}
    steps = run_agent(state)

    assert steps == ["extract_functions", "check_complexity", "detect_issues"]
    assert state["functions"] == [] and state["issues"] == [] and state["syntax_error"] is None
    assert state["quality_score"] == 100
    assert_well_formed(state)


def test_a_lone_surrogate_is_a_syntax_error_naming_the_character_and_line():
    state = {"raw_code": "a = 1\nx = '\ud800'\n"}
    run_agent(state)

    assert state["syntax_error"] == {
        "message": "'\\ud800' is not valid Unicode text (surrogates not allowed)",
        "line": 2,
    }
    assert "(syntax error at line 2: '\\ud800' is not valid Unicode text" in state["summary"]
    assert state["quality_score"] == 0
    assert json.dumps(state["issues"]).isascii()  # the message escapes the surrogate: it can be stored and sent


def test_a_nul_byte_is_a_syntax_error_naming_its_line():
    state = {"raw_code": "a = 1\nx = 1\x00\n"}
    run_agent(state)

    assert state["syntax_error"]["line"] == 2
    assert "null bytes" in state["syntax_error"]["message"]
    assert "syntax error at line 2" in state["summary"]
    assert_well_formed(state)


def _refactor_seconds(defaults: int) -> float:
    source = "def f(" + ", ".join(f"a{i}=[]" for i in range(defaults)) + "):\n    pass\n"
    started = time.perf_counter()
    state = apply({"raw_code": source}, refactor)
    elapsed = time.perf_counter() - started
    changes = state["refactorings"][0]["changes"]
    assert sum(c["kind"] == "mutable_default" for c in changes) == defaults
    last = f"a{defaults - 1}"
    assert f"{last}=None" in state["code"] and f"    if {last} is None:\n        {last} = []\n" in state["code"]
    return elapsed


def test_many_mutable_defaults_are_fixed_in_linear_time():
    # Replacing each default by scanning all of them was quadratic: 4x the defaults took 16x the time.
    small, large = _refactor_seconds(5_000), _refactor_seconds(20_000)
    assert large / small < 8, f"5,000 defaults: {small:.2f}s, 20,000: {large:.2f}s"


def test_a_half_megabyte_source_is_reviewed_and_refactored():
    one = "def f{i}(a, b=[]):\n    if a:\n        print(a)\n    return a + 1\n\n\n"
    count = 500_000 // len(one.format(i=0))
    source = "".join(one.format(i=i) for i in range(count))
    assert len(source) >= 500_000
    state = review_pass({"raw_code": source})

    assert len(state["functions"]) == len(state["complexity"]) == count
    assert sum(i["kind"] == "mutable_default" for i in state["issues"]) == count
    apply(state, refactor)
    assert len(state["refactorings"][0]["changes"]) == 2 * count  # a docstring and a None guard each
    assert_well_formed(state)


# -- the score --------------------------------------------------------------------


def test_quality_score_formula():
    high = {"severity": "high"}
    medium = {"severity": "medium"}
    low = {"severity": "low"}
    assert quality_score([], 100.0) == 100
    assert quality_score([], 40.0) == 100
    assert quality_score([], 0.0) == 80
    assert quality_score([high, medium, low], 100.0) == 100 - 15 - 8 - 3
    assert quality_score([high] * 10, 100.0) == 0
    assert quality_score([], 100.0, syntax_error=True) == 0


# -- the graph ----------------------------------------------------------------------


def test_graph_compiles_and_describes_the_loop():
    described = code_review_agent.compile().describe()

    assert described["graph_id"] == "code_review_agent"
    assert described["entry_point"] == "extract_functions"
    assert [n["name"] for n in described["nodes"]] == [
        "extract_functions",
        "check_complexity",
        "detect_issues",
        "refactor",
    ]
    assert {(e["source"], e["target"]) for e in described["edges"]} == {
        ("extract_functions", "check_complexity"),
        ("check_complexity", "detect_issues"),
        ("refactor", "extract_functions"),
    }
    assert described["conditional_edges"] == [
        {"source": "detect_issues", "router": "quality_gate", "branches": {"done": END, "refactor": "refactor"}}
    ]


def test_every_node_has_the_timeout():
    nodes = code_review_agent.compile().nodes

    assert set(nodes) == {"extract_functions", "check_complexity", "detect_issues", "refactor"}
    assert {name: spec.timeout for name, spec in nodes.items()} == dict.fromkeys(
        nodes, code_review.NODE_TIMEOUT_SECONDS
    )
    assert 0 < code_review.NODE_TIMEOUT_SECONDS < float("inf")


def test_graph_is_found_by_the_builtin_loader():
    from awe.graph import load_graphs

    graphs = load_graphs()
    assert graphs["code_review_agent"].fingerprint == code_review_agent.compile().fingerprint


def test_node_functions_are_documented_and_simple():
    for fn in (extract_functions, check_complexity, detect_issues, quality_gate, refactor):
        assert fn.__module__ == code_review.__name__ and inspect.getdoc(fn)
    assert "comments" in inspect.getdoc(refactor)
    blocks = cc_visit(inspect.getsource(code_review))
    worst = max(b.complexity for b in blocks if not hasattr(b, "methods"))
    assert worst <= 10
