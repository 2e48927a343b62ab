"""Every graph the coordinator can run, by id and version.

Two kinds of graph live side by side. A **Python graph** comes from a graph
module that the coordinator and every worker import; its version changes when
its topology does. A **JSON graph** is created over the API: its definition
is validated against the tools this process knows, stored, and compiled here
and on every worker, which learns it from the coordinator (see
:class:`~awe.transport.messages.GraphDefined`). Posting a definition under an
existing id adds a version; a run keeps the version it started on, so every
version that a stored run names stays loaded until the graph is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from awe.graph import CompiledGraph
from awe.graph.json_graph import InvalidGraph, Problem, compile_definition, mermaid, tools_used, validate
from awe.graph.tools import Tool
from awe.store import GraphRecord


class GraphConflict(RuntimeError):
    """The request would change a graph in a way that is not allowed (its id belongs to a Python graph)."""


class GraphInUse(RuntimeError):
    def __init__(self, graph_id: str, runs: int) -> None:
        super().__init__(
            f"graph {graph_id!r} has {runs} run(s) in flight; cancel them or wait until they finish, then delete it"
        )


@dataclass(frozen=True)
class GraphVersion:
    graph_id: str
    version: int
    source: str
    """``python`` or ``json``."""
    graph: CompiledGraph
    definition: dict[str, Any]
    """A JSON graph's (normalised) definition; a Python graph's ``describe()``."""
    created_at: str

    @cached_property
    def node_tools(self) -> dict[str, str]:
        """For a JSON graph, the tool each node calls (a worker needs it to run that node)."""
        return tools_used(self.definition) if self.source == "json" else {}

    def describe(self) -> dict[str, Any]:
        return {
            **self.graph.describe(),
            "version": self.version,
            "source": self.source,
            "created_at": self.created_at,
            "mermaid": mermaid(self.graph),
            **({"definition": self.definition} if self.source == "json" else {}),
        }


class GraphRegistry:
    def __init__(self, tools: dict[str, Tool]) -> None:
        self.tools = tools
        self._versions: dict[str, dict[int, GraphVersion]] = {}

    def add(self, version: GraphVersion) -> None:
        self._versions.setdefault(version.graph_id, {})[version.version] = version

    def remove(self, graph_id: str) -> None:
        self._versions.pop(graph_id, None)

    def get(self, graph_id: str, version: int | None = None) -> GraphVersion | None:
        """A version of a graph, or its newest one."""
        versions = self._versions.get(graph_id)
        if not versions:
            return None
        return versions.get(version) if version is not None else versions[max(versions)]

    def versions(self, graph_id: str) -> list[GraphVersion]:
        return [v for _, v in sorted(self._versions.get(graph_id, {}).items())]

    def newest(self) -> list[GraphVersion]:
        """The newest version of every graph, by id."""
        return [self._versions[g][max(self._versions[g])] for g in sorted(self._versions) if self._versions[g]]

    def json_versions(self) -> list[GraphVersion]:
        """Every loaded version of every JSON graph: what a joining worker must learn."""
        return [v for g in sorted(self._versions) for v in self.versions(g) if v.source == "json"]

    def check(self, definition: Any) -> dict[str, Any]:
        """A definition ready to store, or :class:`InvalidGraph` listing every problem."""
        normalised: dict[str, Any] = validate(definition, self.tools)
        existing = self.get(normalised["graph_id"])
        if existing is not None and existing.source == "python":
            raise GraphConflict(
                f"graph {normalised['graph_id']!r} is defined in a Python graph module; choose another graph_id"
            )
        return normalised

    def compile_json(self, definition: dict[str, Any], *, version: int, created_at: str) -> GraphVersion:
        """A JSON graph version (a checked or a stored definition), compiled against this process's tools."""
        return GraphVersion(
            graph_id=str(definition["graph_id"]),
            version=version,
            source="json",
            graph=compile_definition(definition, self.tools),
            definition=definition,
            created_at=created_at,
        )

    def compile_record(self, record: GraphRecord) -> GraphVersion:
        return self.compile_json(record.definition, version=record.version, created_at=record.created_at)


__all__ = ["GraphConflict", "GraphInUse", "GraphRegistry", "GraphVersion", "InvalidGraph", "Problem"]
