"""The immutable, validated form of a graph, shared by the coordinator and the workers.

The coordinator needs only the topology (who follows whom); the workers need
the functions. Both import the same module, so both hold the same
``CompiledGraph``, and the ``fingerprint`` lets the coordinator check that a
worker's copy has the same topology as its own before sending it jobs.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from awe.graph.errors import GraphError
from awe.graph.policy import NO_RETRY, RetryPolicy
from awe.graph.reducers import Reducer

END = "__end__"
"""The pseudo-node that finishes a run."""


@dataclass(frozen=True)
class NodeSpec:
    """A node's function and how to call it."""

    name: str
    fn: Callable[..., Any]
    is_async: bool
    takes_context: bool
    retry: RetryPolicy = NO_RETRY
    timeout: float | None = None
    """Seconds one attempt may take; past it the attempt fails with :class:`NodeTimeout`."""
    inline: bool = False
    """A sync node run on the worker's event loop, not in a thread (see ``Graph.add_node``)."""

    @classmethod
    def from_function(
        cls,
        graph: str,
        name: str,
        fn: Callable[..., Any],
        *,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        inline: bool = False,
    ) -> NodeSpec:
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise GraphError(f"graph {graph!r}: the retry of node {name!r} must be a RetryPolicy")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf")
        ):
            raise GraphError(f"graph {graph!r}: the timeout of node {name!r} must be a positive number of seconds")
        if not callable(fn):
            raise GraphError(f"graph {graph!r}: node {name!r} is not callable")
        try:
            params = [
                p
                for p in inspect.signature(fn).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
            ]
        except (TypeError, ValueError) as exc:
            raise GraphError(f"graph {graph!r}: cannot read the signature of node {name!r}: {exc}") from exc
        if len(params) not in (1, 2):
            raise GraphError(
                f"graph {graph!r}: node {name!r} must take (state) or (state, ctx), "
                f"it takes {len(params)} positional parameters"
            )
        is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)
        if inline is not False:
            _check_inline(graph, name, inline, is_async, timeout)
        return cls(
            name=name,
            fn=fn,
            is_async=is_async,
            takes_context=len(params) == 2,
            retry=retry or NO_RETRY,
            timeout=float(timeout) if timeout is not None else None,
            inline=inline,
        )


def _check_inline(graph: str, name: str, inline: object, is_async: bool, timeout: float | None) -> None:
    if inline is not True:
        raise GraphError(f"graph {graph!r}: the inline of node {name!r} must be True or False")
    if is_async:
        raise GraphError(
            f"graph {graph!r}: node {name!r} is async, so it runs on the worker's event loop already; "
            "inline is for sync nodes"
        )
    if timeout is not None:
        raise GraphError(
            f"graph {graph!r}: node {name!r} is inline and has a timeout, but nothing can stop a node on the "
            "event loop; drop the timeout, or run it in a thread (inline=False) where its timeout applies"
        )


@dataclass(frozen=True)
class ConditionalEdge:
    """``router(state)`` returns a key of ``branches``; the run follows that branch."""

    source: str
    router: Callable[[dict[str, Any]], Any]
    branches: Mapping[str, str]


@dataclass(frozen=True)
class Send:
    """A router's order to run ``node`` once more in the next superstep, on ``payload`` instead of the state.

    A router that returns a list of ``Send`` maps a node over a list known only at run time; each
    item is its own job, and the node's returned updates are folded into the state by the keys'
    reducers.
    """

    node: str
    payload: dict[str, Any]

    def to_wire(self) -> dict[str, Any]:
        return {"send": self.node, "payload": self.payload}


@dataclass(frozen=True)
class Join:
    """``target`` runs once every one of ``sources`` has finished (since it last ran)."""

    sources: tuple[str, ...]
    target: str


class NodeTimeout(TimeoutError):
    """An attempt ran past its node's ``timeout``; retried like any other error the policy accepts."""


class RouteError(LookupError):
    """A router returned a key that its conditional edge does not know."""


@dataclass(frozen=True)
class CompiledGraph:
    name: str
    entry: str
    nodes: Mapping[str, NodeSpec]
    edges: Mapping[str, tuple[str, ...]]
    """Unconditional successors of each node that has any; several mean parallel branches."""
    routers: Mapping[str, ConditionalEdge]
    """Conditional edge of each node that has one."""
    joins: tuple[Join, ...] = ()
    reducers: Mapping[str, Reducer] = field(default_factory=dict)
    """How updates to each state key combine; keys not here take their one writer's value."""
    interrupt_before: frozenset[str] = frozenset()
    """Nodes before whose step every run pauses for a person."""
    interrupt_after: frozenset[str] = frozenset()
    """Nodes after whose step every run pauses for a person."""
    pause_on_error: bool = False
    """A node that fails for good pauses the run (for a person to fix) instead of failing it."""
    fingerprint: str = field(default="")

    @classmethod
    def build(
        cls,
        *,
        name: str,
        nodes: dict[str, NodeSpec],
        edges: list[tuple[str, str]],
        conditional: list[ConditionalEdge],
        entry: str | None,
        joins: list[Join] | None = None,
        reducers: dict[str, Reducer] | None = None,
        interrupt_before: frozenset[str] = frozenset(),
        interrupt_after: frozenset[str] = frozenset(),
        pause_on_error: bool = False,
    ) -> CompiledGraph:
        known = set(nodes)
        for key, names in (("interrupt_before", interrupt_before), ("interrupt_after", interrupt_after)):
            unknown = sorted(n for n in names if n not in known)
            if unknown:
                raise GraphError(f"graph {name!r}: {key} names {unknown}, which are not nodes; known: {sorted(known)}")
        if not nodes:
            raise GraphError(f"graph {name!r} has no nodes")
        if entry is None:
            raise GraphError(f"graph {name!r} has no entry point: call set_entry_point(<node>)")
        if entry not in known:
            raise GraphError(f"graph {name!r}: entry point {entry!r} is not a node")

        successors = _successors(name, edges, known)
        routers = _routers(name, conditional, known)
        _check_joins(name, joins or [], known)
        graph = cls(
            name=name,
            entry=entry,
            nodes=dict(nodes),
            edges={k: tuple(v) for k, v in successors.items()},
            routers=routers,
            joins=tuple(joins or ()),
            reducers=dict(reducers or {}),
            interrupt_before=frozenset(interrupt_before),
            interrupt_after=frozenset(interrupt_after),
            pause_on_error=pause_on_error,
        )
        graph._check_reachability()
        object.__setattr__(graph, "fingerprint", graph._compute_fingerprint())
        return graph

    # -- topology -----------------------------------------------------------

    def targets(self, node: str) -> list[str]:
        """Every node (or END) that may follow ``node``: its edges, its router's branches, its joins."""
        found = list(self.edges.get(node, ()))
        if node in self.routers:
            found += self.routers[node].branches.values()
        found += [j.target for j in self.joins if node in j.sources]
        return list(dict.fromkeys(found))

    def successors(self, node: str, route: Any) -> tuple[list[str], list[Send]]:
        """What ``node``'s edges and its router's answer start next: node names (END included) and Sends.

        ``route`` is the router's answer as the worker sent it: None, one branch key, or a list of
        branch keys and ``{"send": node, "payload": {...}}`` items. Joins are not included: whether a
        join fires depends on the other branches, which is the run's business.
        """
        names = list(self.edges.get(node, ()))
        sends: list[Send] = []
        cond = self.routers.get(node)
        if cond is None:
            return names, sends
        answers = route if isinstance(route, list) else [route]
        if not answers:
            raise RouteError(f"the router of node {node!r} returned no branch; expected one of {sorted(cond.branches)}")
        for answer in answers:
            if isinstance(answer, dict) and set(answer) == {"send", "payload"}:
                target, payload = answer["send"], answer["payload"]
                if not isinstance(payload, dict):
                    raise RouteError(
                        f"the router of node {node!r} sent a {type(payload).__name__} to {target!r}; "
                        "a Send's payload is a dict"
                    )
                if target not in cond.branches.values() or target == END:
                    raise RouteError(
                        f"the router of node {node!r} sent to {target!r}; a Send must name a node among its "
                        f"branches {sorted(t for t in cond.branches.values() if t != END)}"
                    )
                sends.append(Send(target, payload))
                continue
            key = str(answer) if isinstance(answer, (str, int, bool)) else answer
            if not isinstance(key, str) or key not in cond.branches:
                raise RouteError(
                    f"the router of node {node!r} returned {answer!r}; expected one of {sorted(cond.branches)}"
                )
            names.append(cond.branches[key])
        return list(dict.fromkeys(names)), sends

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description of the topology (for the API and the store)."""
        return {
            "graph_id": self.name,
            "entry_point": self.entry,
            "nodes": [
                {
                    "name": n.name,
                    "async": n.is_async,
                    "takes_context": n.takes_context,
                    "retry": n.retry.describe(),
                    "timeout": n.timeout,
                    **({"inline": True} if n.inline else {}),  # absent if not: graphs keep their fingerprints
                }
                for n in self.nodes.values()
            ],
            "edges": [{"source": s, "target": t} for s, targets in self.edges.items() for t in targets],
            "joins": [{"sources": list(j.sources), "target": j.target} for j in self.joins],
            "reducers": {key: r.name for key, r in sorted(self.reducers.items())},
            "interrupt_before": sorted(self.interrupt_before),
            "interrupt_after": sorted(self.interrupt_after),
            "pause_on_error": self.pause_on_error,
            "conditional_edges": [
                {
                    "source": c.source,
                    "router": getattr(c.router, "__name__", repr(c.router)),
                    "branches": dict(c.branches),
                }
                for c in self.routers.values()
            ],
            "fingerprint": self.fingerprint,
        }

    # -- validation ---------------------------------------------------------

    def _check_reachability(self) -> None:
        reachable = _walk([self.entry], self.targets)
        unreachable = [n for n in self.nodes if n not in reachable]
        if unreachable:
            raise GraphError(
                f"graph {self.name!r}: node {unreachable[0]!r} cannot be reached from the entry point "
                f"{self.entry!r}" + (f" (nor can {unreachable[1:]})" if len(unreachable) > 1 else "")
            )
        predecessors: dict[str, list[str]] = {}
        for node in self.nodes:
            for target in self.targets(node):
                predecessors.setdefault(target, []).append(node)
        finishing = _walk([END], lambda n: predecessors.get(n, []))
        stuck = [n for n in self.nodes if n not in finishing]
        dead_ends = [n for n in stuck if not self.targets(n)]
        if dead_ends:
            raise GraphError(
                f"graph {self.name!r}: node {dead_ends[0]!r} has no outgoing edge, so END cannot be "
                f"reached from it; add_edge({dead_ends[0]!r}, END) to finish there"
            )
        if stuck:
            raise GraphError(
                f"graph {self.name!r}: END cannot be reached from node {stuck[0]!r} (every path from it loops)"
            )

    def _compute_fingerprint(self) -> str:
        topology = self.describe()
        # Where runs pause is the coordinator's business: a worker runs the same nodes either way.
        for key in ("fingerprint", "interrupt_before", "interrupt_after", "pause_on_error"):
            topology.pop(key, None)
        blob = json.dumps(topology, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _check_source(graph: str, source: str, known: set[str]) -> None:
    if source == END:
        raise GraphError(f"graph {graph!r}: an edge cannot start at END")
    if source not in known:
        raise GraphError(f"graph {graph!r}: edge from unknown node {source!r}")


def _check_target(graph: str, what: str, target: str, known: set[str]) -> None:
    if target != END and target not in known:
        raise GraphError(f"graph {graph!r}: {what} points to unknown node {target!r}")


def _walk(start: list[str], neighbours: Callable[[str], list[str]]) -> set[str]:
    seen = set(start)
    stack = list(start)
    while stack:
        for nxt in neighbours(stack.pop()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def _successors(graph: str, edges: list[tuple[str, str]], known: set[str]) -> dict[str, list[str]]:
    successors: dict[str, list[str]] = {}
    for source, target in edges:
        _check_source(graph, source, known)
        _check_target(graph, f"edge {source!r} -> {target!r}", target, known)
        if target in successors.get(source, []):
            raise GraphError(f"graph {graph!r}: the edge {source!r} -> {target!r} is added twice")
        successors.setdefault(source, []).append(target)
    return successors


def _routers(graph: str, conditional: list[ConditionalEdge], known: set[str]) -> dict[str, ConditionalEdge]:
    routers: dict[str, ConditionalEdge] = {}
    for cond in conditional:
        _check_source(graph, cond.source, known)
        for key, target in cond.branches.items():
            _check_target(graph, f"branch {key!r} of {cond.source!r}", target, known)
        if cond.source in routers:
            raise GraphError(
                f"graph {graph!r}: node {cond.source!r} has two conditional edges; "
                "give it one router that returns every branch to take"
            )
        routers[cond.source] = cond
    return routers


def _check_joins(graph: str, joins: list[Join], known: set[str]) -> None:
    seen: set[tuple[tuple[str, ...], str]] = set()
    for join in joins:
        named = f"the join {list(join.sources)} -> {join.target!r}"
        for source in join.sources:
            if source == END or source not in known:
                raise GraphError(f"graph {graph!r}: {named} starts at {source!r}, which is not a node")
        if join.target == END or join.target not in known:
            raise GraphError(f"graph {graph!r}: {named} must lead to a node")
        if (join.sources, join.target) in seen:
            raise GraphError(f"graph {graph!r}: {named} is added twice")
        seen.add((join.sources, join.target))
