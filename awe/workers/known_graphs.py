"""The graphs a worker can run: its modules' Python graphs, and the JSON graphs it is taught.

A Python graph is code the worker imported; the coordinator sends it that
graph's jobs only if the topologies match (the fingerprint in ``Hello``). A
JSON graph is data: the coordinator teaches every version to each worker (in
``Welcome``, and with ``GraphDefined`` when one is created), and the worker
compiles it against its own tools. A worker may lack some of a graph's tools:
it still learns the graph, and the coordinator sends it only the nodes whose
tools it has (it lists them in ``Hello``); such a node, if it ever came,
fails with a message naming the missing tool.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from awe.graph import CompiledGraph
from awe.graph.json_graph import compile_definition, tools_used
from awe.graph.tools import Tool

log = structlog.get_logger("awe.worker")


class MissingTool(LookupError):
    """This worker does not have the tool a node calls."""


def _missing(name: str) -> Tool:
    def absent(state: dict[str, Any]) -> None:
        raise MissingTool(f"this worker has no tool {name!r}; start it with the graph module that defines it")

    return Tool(name=name, fn=absent, description="(not on this worker)", parameters=None)


class KnownGraphs:
    def __init__(self, python: Mapping[str, CompiledGraph], tools: Mapping[str, Tool]) -> None:
        self.python = dict(python)
        self.tools = dict(tools)
        self._json: dict[tuple[str, int], CompiledGraph] = {}

    def find(self, graph_id: str, version: int) -> CompiledGraph | None:
        """The graph a job names: a JSON graph's version, else the Python graph of that name."""
        return self._json.get((graph_id, version)) or self.python.get(graph_id)

    def learn(self, graph_id: str, version: int, definition: dict[str, Any]) -> None:
        """Compile a JSON graph version taught by the coordinator; a failure is logged, not raised."""
        if (graph_id, version) in self._json:
            return
        tools = {name: self.tools.get(name) or _missing(name) for name in set(tools_used(definition).values())}
        try:
            self._json[(graph_id, version)] = compile_definition(definition, tools)
        except Exception as exc:  # the coordinator checked it: this is a version skew, worth a loud line
            log.error("graph_not_learned", graph_id=graph_id, version=version, error=repr(exc))
            return
        log.info("graph_learned", graph_id=graph_id, version=version)

    def fingerprints(self) -> dict[str, str]:
        """What ``Hello`` says of the Python graphs."""
        return {name: graph.fingerprint for name, graph in self.python.items()}

    def tool_names(self) -> list[str]:
        return sorted(self.tools)
