"""Tools for the JSON graphs the tests create over the API (loaded with ``--graphs json_tools``)."""

from __future__ import annotations

import asyncio
from typing import Any

from awe import END, Graph, tool


@tool(
    "test.add",
    parameters={
        "type": "object",
        "properties": {"key": {"type": "string"}, "by": {"type": "integer"}},
        "required": ["key"],
        "additionalProperties": False,
    },
)
def add(state: dict[str, Any], *, key: str, by: int = 1) -> dict[str, Any]:
    """Adds ``by`` to the number at ``state[key]`` (0 when missing)."""
    return {key: state.get(key, 0) + by}


@tool("test.note")
def note(state: dict[str, Any], *, key: str = "notes", text: str) -> dict[str, Any]:
    """Returns ``[text]`` for ``state[key]``: with an ``append`` reducer, each branch adds its line."""
    return {key: [text]}


@tool("test.wait")
async def wait(state: dict[str, Any], *, seconds: float = 0.5) -> dict[str, Any]:
    """Sleeps, so that a run is still in flight while the test does something else."""
    await asyncio.sleep(state.get("seconds", seconds))
    return {"waited": True}


def _noting(text: str) -> Any:
    def node(state: dict[str, Any]) -> dict[str, Any]:
        return note(state, text=text)

    node.__name__ = text
    return node


# The fan-out of tests/test_json_graphs_api.py, written in Python with the same tool functions.
fan_python = Graph("fan_python", reducers={"notes": "append"})
for _name in ("start", "left", "right", "join"):
    fan_python.add_node(_name, _noting(_name))
fan_python.add_edge("start", "left")
fan_python.add_edge("start", "right")
fan_python.add_edge(["left", "right"], "join")
fan_python.add_edge("join", END)
fan_python.set_entry_point("start")
