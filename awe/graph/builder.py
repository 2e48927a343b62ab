"""The user-facing graph builder: ``Graph(name).add_node(...).add_edge(...)``.

A ``Graph`` is a mutable description. Nothing is checked for consistency until
``compile()``, so nodes and edges may be added in any order; ``compile()``
returns an immutable :class:`~awe.graph.compiled.CompiledGraph` that the
coordinator and the workers share.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from awe.graph.compiled import END, CompiledGraph, ConditionalEdge, Join, NodeSpec
from awe.graph.errors import GRAPH_ID_PATTERN, GraphError
from awe.graph.policy import RetryPolicy
from awe.graph.reducers import Reducer, ReducerFn

__all__ = ["END", "Graph"]


class Graph:
    """A named graph of nodes joined by edges and conditional edges."""

    def __init__(
        self,
        name: str,
        *,
        reducers: Mapping[str, str | ReducerFn] | None = None,
        interrupt_before: Sequence[str] = (),
        interrupt_after: Sequence[str] = (),
        pause_on_error: bool = False,
    ) -> None:
        """``reducers`` maps a state key to how parallel updates of it combine: ``"append"``,
        ``"add"``, ``"merge"`` or a function ``(current, update) -> new``.

        Every run of the graph pauses for a person before the steps that run a node of
        ``interrupt_before``, and after those that ran one of ``interrupt_after``; with
        ``pause_on_error`` a node that fails for good pauses the run instead of failing it.
        A run request may add its own (see ``POST /graph/run``)."""
        if not isinstance(name, str) or not GRAPH_ID_PATTERN.fullmatch(name):
            raise GraphError(
                f"a graph's name must be 1-64 letters, digits and _ . - starting with a letter, not {name!r}: "
                "it appears in URLs, file names and log lines"
            )
        self.name = name
        self._reducers: dict[str, Reducer] = {}
        for key, spec in (reducers or {}).items():
            if not isinstance(key, str) or not key:
                raise GraphError(f"graph {name!r}: a reducer is declared for {key!r}, which is not a state key")
            try:
                self._reducers[key] = Reducer.of(spec)
            except ValueError as exc:
                raise GraphError(f"graph {name!r}: state key {key!r}: {exc}") from None
        self._nodes: dict[str, NodeSpec] = {}
        self._edges: list[tuple[str, str]] = []
        self._joins: list[Join] = []
        self._conditional: list[ConditionalEdge] = []
        self._entry: str | None = None
        self._interrupt_before = frozenset(interrupt_before)
        self._interrupt_after = frozenset(interrupt_after)
        self._pause_on_error = bool(pause_on_error)

    def add_node(
        self,
        name: str,
        fn: Callable[..., Any],
        *,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        inline: bool = False,
    ) -> Graph:
        """Add a node: a function of ``(state)`` or ``(state, ctx)``, sync or async.

        ``retry`` says how a failing node is tried again; without it, the first failure fails the run.
        ``timeout`` (seconds) bounds each attempt: an async node is cancelled, a sync node's thread
        is abandoned (Python cannot stop it) and its worker slot stays busy until the thread returns.

        ``inline=True`` runs a sync node on the worker's event loop instead of in one of its
        threads. For a node that takes microseconds (a router's helper, a formatter, a counter)
        the hop to a thread and back is most of what its step costs the worker: a third of its
        CPU, a tenth of a millisecond. Keep it for such nodes: while an inline node runs, its
        worker does nothing else (no other job, no heartbeat), so one that takes seconds stalls
        every job beside it and can get its worker declared lost. It takes no thread slot and no
        ``timeout`` (nothing could stop it); an async node runs on the loop already.
        """
        if not isinstance(name, str) or not name:
            raise GraphError(f"graph {self.name!r}: a node needs a non-empty string name")
        if name == END:
            raise GraphError(f"graph {self.name!r}: {END!r} is reserved for the end of the graph")
        if name in self._nodes:
            raise GraphError(f"graph {self.name!r}: node {name!r} is added twice")
        self._nodes[name] = NodeSpec.from_function(self.name, name, fn, retry=retry, timeout=timeout, inline=inline)
        return self

    def add_edge(self, source: str | Sequence[str], target: str) -> Graph:
        """After ``source`` finishes, run ``target`` (or end this branch, if it is ``END``).

        Several edges out of one node run their targets in parallel, in the same superstep. A list
        of sources is a join: ``add_edge(["a", "b"], "c")`` runs ``c`` once both have finished.
        """
        if isinstance(source, str):
            self._edges.append((source, target))
            return self
        sources = list(source)
        if not sources or not all(isinstance(s, str) for s in sources):
            raise GraphError(f"graph {self.name!r}: a join needs a list of node names, got {source!r}")
        if len(set(sources)) != len(sources):
            raise GraphError(f"graph {self.name!r}: the join {sources} -> {target!r} names a node twice")
        if len(sources) == 1:
            self._edges.append((sources[0], target))
        else:
            self._joins.append(Join(tuple(sorted(sources)), target))
        return self

    def add_conditional_edge(
        self,
        source: str,
        router: Callable[[dict[str, Any]], Any],
        branches: Mapping[str, str] | Iterable[str],
    ) -> Graph:
        """After ``source``, call ``router(state)`` and follow the branch it names.

        ``branches`` maps each key the router may return to a node name or
        ``END``; a list of node names means each name is its own key.
        """
        if not callable(router):
            raise GraphError(f"graph {self.name!r}: the router of {source!r} is not callable")
        if isinstance(branches, Mapping):
            table = {str(k): v for k, v in branches.items()}
        else:
            table = {str(v): v for v in branches}
        if not table:
            raise GraphError(f"graph {self.name!r}: the conditional edge of {source!r} has no branches")
        self._conditional.append(ConditionalEdge(source=source, router=router, branches=table))
        return self

    def set_entry_point(self, name: str) -> Graph:
        """Name the node every run starts at."""
        self._entry = name
        return self

    def compile(self) -> CompiledGraph:
        """Validate the graph and freeze it; raises :class:`GraphError` naming the offender."""
        return CompiledGraph.build(
            name=self.name,
            nodes=dict(self._nodes),
            edges=list(self._edges),
            conditional=list(self._conditional),
            entry=self._entry,
            joins=list(self._joins),
            reducers=dict(self._reducers),
            interrupt_before=self._interrupt_before,
            interrupt_after=self._interrupt_after,
            pause_on_error=self._pause_on_error,
        )
