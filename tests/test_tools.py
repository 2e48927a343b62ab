"""The tool registry: the ``@tool`` decorator, descriptions, duplicate names, signatures, parameters."""

from __future__ import annotations

import pytest

import awe
import awe.graphs.code_review  # registers the code_review.* tools
from awe.graph import tools
from awe.graph.json_graph import InvalidGraph, compile_definition, validate
from awe.graph.tools import Tool, ToolError, registered_tools, tool


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test registers into an empty registry, so names do not leak between tests."""
    monkeypatch.setattr(tools, "_REGISTRY", {})


def test_tool_is_exported_from_the_top_level_package():
    assert awe.tool is tool and "tool" in awe.__all__
    assert awe.graph.tool is tool and {"Tool", "ToolError", "registered_tools", "tool"} <= set(awe.graph.__all__)


def test_the_decorator_registers_and_returns_the_function_unchanged():
    def shout(state, *, times=1):
        """Upper-case the text.

        Repeats it ``times`` times; this second paragraph is not part of the description.
        """
        return {"text": state["text"].upper() * times}

    assert tool("text.shout")(shout) is shout
    registered = registered_tools()["text.shout"]
    assert registered == Tool("text.shout", shout, "Upper-case the text.", None)
    assert registered.describe() == {"name": "text.shout", "description": "Upper-case the text.", "parameters": None}


def test_the_description_joins_the_first_paragraph_and_may_be_given():
    @tool("a.wrapped")
    def wrapped(state):
        """A first paragraph
        over two lines."""

    @tool("a.given", description="Said explicitly.")
    def given(state):
        """Not this."""

    @tool("a.undocumented")
    def undocumented(state):
        return None

    found = registered_tools()
    assert found["a.wrapped"].description == "A first paragraph over two lines."
    assert found["a.given"].description == "Said explicitly."
    assert found["a.undocumented"].description == ""


def test_registered_tools_is_a_copy():
    tool("a.one")(lambda state: None)
    registered_tools().clear()
    assert "a.one" in registered_tools()


def test_a_name_taken_by_another_function_is_refused_naming_both():
    @tool("a.step")
    def first(state):
        return None

    def second(state):
        return None

    with pytest.raises(ToolError) as caught:
        tool("a.step")(second)
    message = str(caught.value)
    assert "'a.step'" in message and "first" in message and "second" in message and "another name" in message
    assert registered_tools()["a.step"].fn is first


def test_the_same_function_registered_again_is_not_a_conflict():
    """A module imported twice (say, as a script and as a module) registers the same function twice."""

    def step(state):
        return None

    tool("a.step")(step)
    tool("a.step")(step)
    assert registered_tools()["a.step"].fn is step


@pytest.mark.parametrize("name", ["", "9start", "has space", "a/b", "x" * 129, "a\n", None])
def test_bad_tool_names_are_refused(name):
    with pytest.raises(ToolError, match="tool name"):
        tool(name)


def test_a_signature_no_node_could_call_is_refused():
    def three(state, ctx, url):
        return None

    def none():
        return None

    for fn in (three, none):
        with pytest.raises(ToolError, match=r"\(state, \*\*args\) or \(state, ctx, \*\*args\).*keyword-only"):
            tool("a.bad")(fn)
    assert "a.bad" not in registered_tools()


def test_context_and_async_are_read_from_the_signature():
    def plain(state, *, url="x"):
        return None

    def with_ctx(state, ctx, *, url):
        return None

    async def coroutine(state, ctx):
        return None

    class Callable:
        async def __call__(self, state):
            return None

    made = [Tool("t", fn, "", None) for fn in (plain, with_ctx, coroutine, Callable())]
    assert [(t.takes_context, t.is_async) for t in made] == [(False, False), (True, False), (True, True), (False, True)]


def test_parameters_must_be_a_json_schema():
    with pytest.raises(ToolError, match="not a valid JSON Schema"):
        tool("a.bad", parameters={"type": "strnig"})
    with pytest.raises(ToolError, match="JSON Schema object"):
        tool("a.bad", parameters=["not", "a", "schema"])


def definition(tool_name: str, args: dict) -> dict:
    return {
        "graph_id": "g",
        "entry_point": "only",
        "nodes": [{"name": "only", "tool": tool_name, "args": args}],
        "edges": [{"from": "only", "to": "END"}],
    }


def test_parameters_validate_a_nodes_args():
    @tool(
        "web.fetch",
        parameters={
            "type": "object",
            "properties": {"url": {"type": "string", "pattern": "^https://"}, "tries": {"type": "integer"}},
            "required": ["url"],
            "additionalProperties": False,
        },
    )
    def fetch(state, *, url, tries=1):
        """Fetch a page."""
        return {"fetched": [url, tries]}

    known = registered_tools()
    assert validate(definition("web.fetch", {"url": "https://a", "tries": 2}), known)
    with pytest.raises(InvalidGraph) as caught:
        validate(definition("web.fetch", {"url": "http://a", "tries": "2", "extra": 1}), known)
    problems = {p.path: p.message for p in caught.value.problems}
    assert set(problems) == {"/nodes/0/args/url", "/nodes/0/args/tries", "/nodes/0/args/extra"}
    assert "'web.fetch'" in problems["/nodes/0/args/url"] and "^https://" in problems["/nodes/0/args/url"]
    assert "expected integer" in problems["/nodes/0/args/tries"]
    assert "unknown field 'extra'" in problems["/nodes/0/args/extra"]
    with pytest.raises(InvalidGraph, match=r"/nodes/0/args/url: tool 'web.fetch': the required field 'url' is missing"):
        validate(definition("web.fetch", {}), known)


def test_a_node_calls_its_tool_with_its_args():
    @tool("web.fetch")
    def fetch(state, *, url, tries=1):
        return {"fetched": [url, tries, state["n"]]}

    graph = compile_definition(definition("web.fetch", {"url": "https://a"}), registered_tools())
    assert graph.nodes["only"].fn({"n": 5}) == {"fetched": ["https://a", 1, 5]}


def test_the_code_review_steps_are_registered_tools(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.undo()  # back to the process's registry, where importing awe.graphs.code_review registered them
    found = registered_tools()
    for step in ("extract_functions", "check_complexity", "detect_issues", "refactor", "llm_review", "write_report"):
        assert found[f"code_review.{step}"].fn.__name__ == step
        assert found[f"code_review.{step}"].description
