"""Graphs written in JSON: validate a definition, compile it onto the builder, check a run's state.

A definition (documented by ``graph.schema.json`` beside this module, see :func:`graph_schema`)
names tools instead of carrying code, and routes with conditions (:mod:`awe.graph.conditions`)
instead of Python routers. :func:`validate` reports every problem at once, each with a
JSON-pointer-like path into the definition, so that ``POST /graph/create`` can answer all of them
in one 400; :func:`compile_definition` maps a valid definition onto :class:`~awe.graph.Graph`, so
the result is an ordinary :class:`~awe.graph.CompiledGraph` that the engine runs like any other.

Nothing here does I/O: the coordinator and the workers both call it.
"""

from __future__ import annotations

import copy
import difflib
import importlib.resources
import inspect
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator, ValidationError
from jsonschema.validators import validator_for
from referencing.exceptions import Unresolvable

from awe import jsondata
from awe.graph.builder import Graph
from awe.graph.compiled import END, CompiledGraph, _walk
from awe.graph.conditions import Condition, ConditionFailed, InvalidCondition, json_kind
from awe.graph.context import Context
from awe.graph.errors import GRAPH_ID_PATTERN, GraphError
from awe.graph.mermaid import mermaid
from awe.graph.policy import RetryPolicy
from awe.graph.tools import Tool

__all__ = [
    "ELSE",
    "GRAPH_ID_PATTERN",
    "MAX_DEFINITION_BYTES",
    "InvalidGraph",
    "Problem",
    "compile_definition",
    "graph_schema",
    "mermaid",
    "state_problems",
    "tools_used",
    "validate",
]


MAX_DEFINITION_BYTES = 256 * 1024
"""The largest definition the HTTP layer accepts, in bytes of JSON."""

END_NAME = "END"
"""How a definition names the end of the graph."""

ELSE = "else"
"""The branch key of a conditional edge's fallback; the other keys are the conditions' texts."""

_RETRY_DEFAULTS = {"max_attempts": 3, "backoff": 0.5, "factor": 2.0, "max_backoff": 30.0, "jitter": True}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition (or a state): where, and what to do about it."""

    path: str
    """A JSON pointer into the document, e.g. ``/nodes/2/tool``; ``""`` for the whole document."""
    message: str

    def describe(self) -> dict[str, str]:
        """The problem as JSON, for an HTTP error body."""
        return {"path": self.path, "message": self.message}


class InvalidGraph(ValueError):
    """A definition that cannot be a graph; ``problems`` lists every problem found, not just the first."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        shown = "; ".join(f"{p.path or '/'}: {p.message}" for p in self.problems[:5])
        more = f" (and {len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        count = f"{len(self.problems)} problem{'' if len(self.problems) == 1 else 's'}"
        super().__init__(f"invalid graph definition, {count}: {shown}{more}")


@cache
def graph_schema() -> dict[str, Any]:
    """The JSON Schema of a definition, shipped in the package (a shared object: do not change it)."""
    text = importlib.resources.files("awe.graph").joinpath("graph.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


# -- the public functions ---------------------------------------------------------


def validate(definition: Any, tools: Mapping[str, Tool]) -> dict[str, Any]:
    """The definition with its defaults filled in, or :class:`InvalidGraph` listing every problem."""
    normalized, _, problems = _check(definition, tools)
    if problems:
        raise InvalidGraph(problems)
    return normalized


def compile_definition(definition: dict[str, Any], tools: Mapping[str, Tool]) -> CompiledGraph:
    """Compile a definition into a graph whose nodes call its tools; :class:`InvalidGraph` if it is not valid.

    The definition is validated again (it is cheap), so a stored definition that a newer awe no
    longer accepts is refused with its problems rather than half-compiled.
    """
    _, graph, problems = _check(definition, tools)
    if graph is None:
        raise InvalidGraph(problems)
    return graph


def tools_used(definition: dict[str, Any]) -> dict[str, str]:
    """Node name -> tool name, for a worker to check it has every tool before taking the graph's jobs."""
    return {
        node["name"]: node["tool"]
        for node in definition.get("nodes") or []
        if isinstance(node, dict) and isinstance(node.get("name"), str) and isinstance(node.get("tool"), str)
    }


def state_problems(definition: dict[str, Any], state: dict[str, Any]) -> list[Problem]:
    """Every way ``state`` fails the definition's ``state_schema`` (none without one).

    Paths point into the state itself (``/raw_code``); prefix ``/initial_state`` to point into a
    request body.
    """
    schema = definition.get("state_schema")
    if schema is None:
        return []
    validator = validator_for(schema, default=Draft202012Validator)(schema)
    try:
        errors = list(validator.iter_errors(state))
    except Unresolvable as exc:
        return [Problem("", f"the graph's state_schema cannot be used: it refers to {exc.ref!r}, which is not in it")]
    except re.error as exc:  # a definition validated by this module has only patterns that compile
        return [Problem("", f"the graph's state_schema cannot be used: a pattern does not compile: {exc}")]
    return _sorted(p for error in errors for p in _schema_error_problems(error, ""))


# -- checking ----------------------------------------------------------------------


def _check(definition: Any, tools: Mapping[str, Tool]) -> tuple[dict[str, Any], CompiledGraph | None, list[Problem]]:
    """The normalized definition, its graph (None if it has problems) and every problem found."""
    if not isinstance(definition, dict):
        return {}, None, [Problem("", f"a graph definition is a JSON object, not {json_kind(definition)}")]
    try:
        jsondata.check(definition, "the definition")
    except jsondata.NotJsonData as exc:  # too deep or not JSON: the checks below could not walk it safely
        return definition, None, [Problem("", f"{exc}; a definition must be plain JSON data")]
    validator = Draft202012Validator(graph_schema())
    problems = [p for error in validator.iter_errors(definition) for p in _schema_error_problems(error, "")]
    problems += _node_problems(definition, tools)
    problems += _reference_problems(definition)
    problems += _flow_problems(definition)
    problems += _condition_problems(definition)
    problems += _state_schema_problems(definition.get("state_schema"))
    if problems:
        return definition, None, _sorted(problems)
    normalized = _normalized(definition)
    try:
        return normalized, _build(normalized, tools), []
    except GraphError as exc:  # a rule of the builder's that the checks above do not know
        return normalized, None, [Problem("", str(exc))]


def _node_problems(definition: dict[str, Any], tools: Mapping[str, Tool]) -> list[Problem]:
    """Duplicate or reserved node names, unknown tools, and args the tool cannot take."""
    problems: list[Problem] = []
    first: dict[str, int] = {}
    for i, node in _objects(definition.get("nodes")):
        name = node.get("name")
        if isinstance(name, str) and name in first:
            problems.append(
                Problem(
                    f"/nodes/{i}/name",
                    f"node name {name!r} is used twice (also /nodes/{first[name]}); give each node its own name",
                )
            )
        elif name == END_NAME:
            problems.append(Problem(f"/nodes/{i}/name", "'END' is reserved for the end of the graph; rename the node"))
        if isinstance(name, str):
            first.setdefault(name, i)
        problems += _tool_problems(f"/nodes/{i}", node, tools)
    return problems


def _tool_problems(path: str, node: dict[str, Any], tools: Mapping[str, Tool]) -> list[Problem]:
    """An unknown tool, or ``args`` that do not match its ``parameters`` schema or its signature."""
    name, args = node.get("tool"), node.get("args", {})
    if not isinstance(name, str):
        return []
    found = tools.get(name)
    if found is None:
        return [Problem(f"{path}/tool", f"unknown tool {name!r}{_suggest(name, tools)}; {_known('tools', tools)}")]
    if not isinstance(args, dict):
        return []
    if found.parameters is not None:
        errors = Draft202012Validator(found.parameters).iter_errors(args)
        problems = [
            Problem(p.path, f"tool {name!r}: {p.message}")
            for error in errors
            for p in _schema_error_problems(error, f"{path}/args")
        ]
        if problems:
            return _sorted(problems)
    return _signature_problems(f"{path}/args", found, args)


def _signature_problems(path: str, found: Tool, args: dict[str, Any]) -> list[Problem]:
    """Args the tool's function cannot be called with (an unknown keyword, a missing one)."""
    try:
        signature = inspect.signature(found.fn)
        positional = [None] * (2 if found.takes_context else 1)
    except (TypeError, ValueError) as exc:
        return [Problem(path, f"tool {found.name!r} cannot be called: {exc}")]
    try:
        signature.bind(*positional, **args)
    except TypeError as exc:
        return [
            Problem(path, f"tool {found.name!r} cannot be called with these args: {exc}; its signature is {signature}")
        ]
    return []


def _reference_problems(definition: dict[str, Any]) -> list[Problem]:
    """Every node name in the entry point, the edges and the cases that is not a node (or misuses END)."""
    names = _node_names(definition)
    problems: list[Problem] = []
    entry = definition.get("entry_point")
    if isinstance(entry, str):
        problems += _unknown("/entry_point", entry, names, "the entry point", end_allowed=False)
    for path, source, target in _edges(definition):
        problems += _edge_problems(path, source, target, names)
    problems += _duplicate_edge_problems(definition)
    routed: dict[str, int] = {}
    for i, cond in _objects(definition.get("conditional_edges")):
        problems += _conditional_problems(f"/conditional_edges/{i}", cond, names)
        origin = cond.get("from")
        if isinstance(origin, str) and origin in routed:
            problems.append(
                Problem(
                    f"/conditional_edges/{i}/from",
                    f"node {origin!r} already has a conditional edge (/conditional_edges/{routed[origin]}); "
                    "put all its cases in that one",
                )
            )
        if isinstance(origin, str):
            routed.setdefault(origin, i)
    return problems


def _edge_problems(path: str, source: str | list[str], target: str, names: dict[str, int]) -> list[Problem]:
    """An edge's or a join's unknown nodes; END as a source, or as the target of a join."""
    join = isinstance(source, list) and len(source) > 1
    problems = _unknown(f"{path}/to", target, names, "a join's target" if join else "an edge", end_allowed=not join)
    if isinstance(source, str):
        return _unknown(f"{path}/from", source, names, "an edge's source", end_allowed=False) + problems
    for k, item in enumerate(source):
        problems += _unknown(f"{path}/from/{k}", item, names, "a join's source", end_allowed=False)
        if item in source[:k]:
            problems.append(Problem(f"{path}/from/{k}", f"the join names node {item!r} twice; name it once"))
    return problems


def _conditional_problems(path: str, cond: dict[str, Any], names: dict[str, int]) -> list[Problem]:
    """A conditional edge's unknown source and targets."""
    problems: list[Problem] = []
    if isinstance(cond.get("from"), str):
        problems += _unknown(f"{path}/from", cond["from"], names, "a conditional edge's source", end_allowed=False)
    for j, case in _objects(cond.get("cases")):
        if isinstance(case.get("to"), str):
            problems += _unknown(f"{path}/cases/{j}/to", case["to"], names, "a case", end_allowed=True)
    if isinstance(cond.get("else"), str):
        problems += _unknown(f"{path}/else", cond["else"], names, "the else branch", end_allowed=True)
    return problems


def _duplicate_edge_problems(definition: dict[str, Any]) -> list[Problem]:
    """The same edge (or join) given twice: the builder refuses it, and it is surely a slip."""
    problems: list[Problem] = []
    seen: dict[tuple[tuple[str, ...], str], str] = {}
    for path, source, target in _edges(definition):
        key = (tuple(sorted(source)) if isinstance(source, list) else (source,), target)
        if key in seen:
            shown = " + ".join(repr(s) for s in key[0])
            problems.append(
                Problem(path, f"the edge {shown} -> {target!r} is given twice (also {seen[key]}); drop one")
            )
        seen.setdefault(key, path)
    return problems


def _flow_problems(definition: dict[str, Any]) -> list[Problem]:
    """Nodes the entry point cannot reach, and nodes from which END cannot be reached."""
    names = _node_names(definition)
    targets = _targets(definition, names)
    problems: list[Problem] = []
    entry = definition.get("entry_point")
    if isinstance(entry, str) and entry in names:
        reachable = _walk([entry], lambda n: targets.get(n, []))
        problems += [
            Problem(
                f"/nodes/{i}",
                f"node {name!r} cannot be reached from the entry point {entry!r}; add an edge to it or remove it",
            )
            for name, i in names.items()
            if name not in reachable
        ]
    predecessors: dict[str, list[str]] = {}
    for source, ends in targets.items():
        for target in ends:
            predecessors.setdefault(target, []).append(source)
    finishing = _walk([END_NAME], lambda n: predecessors.get(n, []))
    return problems + [_stuck_problem(name, i, targets) for name, i in names.items() if name not in finishing]


def _stuck_problem(name: str, i: int, targets: dict[str, list[str]]) -> Problem:
    """Why END cannot be reached from ``name``, and the fix."""
    if not targets.get(name):
        return Problem(
            f"/nodes/{i}",
            f'node {name!r} has no outgoing edge, so a run cannot end there; add {{"from": "{name}", "to": "END"}}',
        )
    return Problem(
        f"/nodes/{i}",
        f"END cannot be reached from node {name!r}: every path from it loops; give one of those nodes a way to END",
    )


def _condition_problems(definition: dict[str, Any]) -> list[Problem]:
    """Conditions that do not parse or use what is not allowed, and a condition given twice in one edge."""
    problems: list[Problem] = []
    for i, cond in _objects(definition.get("conditional_edges")):
        first: dict[str, int] = {}
        for j, case in _objects(cond.get("cases")):
            text, path = case.get("if"), f"/conditional_edges/{i}/cases/{j}/if"
            if not isinstance(text, str):
                continue
            if text in first:
                problems.append(
                    Problem(path, f"case {first[text]} has the same condition, so this case is never taken")
                )
            first.setdefault(text, j)
            try:
                Condition.parse(text)
            except InvalidCondition as exc:
                problems += [Problem(path, message) for message in exc.problems]
    return problems


def _state_schema_problems(schema: Any) -> list[Problem]:
    """A ``state_schema`` that its meta-schema refuses, or that refers outside itself."""
    if not isinstance(schema, (dict, bool)):
        return []
    cls = validator_for(schema, default=Draft202012Validator)
    meta = cls(cls.META_SCHEMA, format_checker=cls.FORMAT_CHECKER)  # the formats: a pattern must compile
    problems = [
        Problem("/state_schema" + _pointer(error.absolute_path), f"not a valid JSON Schema: {_shorten(error.message)}")
        for error in meta.iter_errors(schema)
    ]
    problems += [
        Problem(
            f"/state_schema{path}",
            f"{ref!r} refers outside the state_schema; awe fetches nothing: use '#/$defs/...' references",
        )
        for path, ref in _references(schema, "")
        if not ref.startswith("#")
    ]
    return problems


def _references(schema: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every ``$ref`` / ``$dynamicRef`` string in ``schema``, with its path."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key in ("$ref", "$dynamicRef") and isinstance(value, str):
                yield f"{path}/{_escape(key)}", value
            else:
                yield from _references(value, f"{path}/{_escape(str(key))}")
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            yield from _references(value, f"{path}/{i}")


# -- building ------------------------------------------------------------------


def _normalized(definition: dict[str, Any]) -> dict[str, Any]:
    """A deep copy with every optional field present: what the store keeps and the workers compile."""
    source = copy.deepcopy(definition)
    normalized = {"$schema": source["$schema"]} if "$schema" in source else {}
    normalized |= {
        "graph_id": source["graph_id"],
        "description": source.get("description", ""),
        "entry_point": source["entry_point"],
        "nodes": [
            {
                "name": node["name"],
                "tool": node["tool"],
                "args": node.get("args", {}),
                "retry": None if node.get("retry") is None else _RETRY_DEFAULTS | node["retry"],
                "timeout": node.get("timeout"),
            }
            for node in source["nodes"]
        ],
        "edges": source.get("edges", []),
        "conditional_edges": source.get("conditional_edges", []),
        "reducers": source.get("reducers", {}),
        "interrupt_before": source.get("interrupt_before", []),
        "interrupt_after": source.get("interrupt_after", []),
        "pause_on_error": source.get("pause_on_error", False),
        "state_schema": source.get("state_schema"),
    }
    return normalized


def _build(definition: dict[str, Any], tools: Mapping[str, Tool]) -> CompiledGraph:
    """Map a normalized definition onto the builder, whose own checks then apply too."""
    graph = Graph(
        definition["graph_id"],
        reducers=definition["reducers"],
        interrupt_before=definition.get("interrupt_before", ()),
        interrupt_after=definition.get("interrupt_after", ()),
        pause_on_error=definition.get("pause_on_error", False),
    )
    for node in definition["nodes"]:
        retry = None if node["retry"] is None else RetryPolicy(**node["retry"])
        call = _node_function(node["name"], tools[node["tool"]], node["args"])
        graph.add_node(node["name"], call, retry=retry, timeout=node["timeout"])
    for edge in definition["edges"]:
        graph.add_edge(edge["from"], _target(edge["to"]))
    for cond in definition["conditional_edges"]:
        cases = [(case["if"], Condition.parse(case["if"]), _target(case["to"])) for case in cond["cases"]]
        branches = {text: target for text, _, target in cases} | {ELSE: _target(cond["else"])}
        graph.add_conditional_edge(cond["from"], _router(cond["from"], cases), branches)
    graph.set_entry_point(definition["entry_point"])
    return graph.compile()


def _target(name: str) -> str:
    return END if name == END_NAME else name


def _router(source: str, cases: list[tuple[str, Condition, str]]) -> Callable[[dict[str, Any]], str]:
    """The first case whose condition holds (its text is its branch key), else :data:`ELSE`."""

    def conditions(state: dict[str, Any]) -> str:
        for text, condition, _ in cases:
            try:
                if condition.holds(state):
                    return text
            except ConditionFailed as exc:
                raise ConditionFailed(f"the conditional edge of node {source!r}: {exc}") from exc.__cause__
        return ELSE

    return conditions


def _node_function(node: str, found: Tool, args: dict[str, Any]) -> Callable[..., Any]:
    """A node function calling the tool with a fresh copy of ``args``, as sync or async as the tool.

    The engine reads ``(state)`` vs ``(state, ctx)`` and sync vs async from the node function's
    signature, so the wrapper is built to match the tool's rather than being one generic function.
    """
    call = _CALLERS[found.is_async, found.takes_context](found.fn, args)
    call.__name__ = call.__qualname__ = node
    call.__doc__ = f"Node {node!r}: calls tool {found.name!r}."
    return call


def _sync(fn: Callable[..., Any], args: dict[str, Any]) -> Callable[..., Any]:
    def node(state: dict[str, Any]) -> Any:
        return fn(state, **copy.deepcopy(args))

    return node


def _sync_with_context(fn: Callable[..., Any], args: dict[str, Any]) -> Callable[..., Any]:
    def node(state: dict[str, Any], ctx: Context) -> Any:
        return fn(state, ctx, **copy.deepcopy(args))

    return node


def _async(fn: Callable[..., Any], args: dict[str, Any]) -> Callable[..., Any]:
    async def node(state: dict[str, Any]) -> Any:
        return await fn(state, **copy.deepcopy(args))

    return node


def _async_with_context(fn: Callable[..., Any], args: dict[str, Any]) -> Callable[..., Any]:
    async def node(state: dict[str, Any], ctx: Context) -> Any:
        return await fn(state, ctx, **copy.deepcopy(args))

    return node


_CALLERS: dict[tuple[bool, bool], Callable[[Callable[..., Any], dict[str, Any]], Callable[..., Any]]] = {
    (False, False): _sync,
    (False, True): _sync_with_context,
    (True, False): _async,
    (True, True): _async_with_context,
}
"""(is_async, takes_context) -> the wrapper factory."""


# -- the definition's parts ------------------------------------------------------------


def _objects(items: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(index, item)`` for the items of a list that are objects; the schema reports the others."""
    if isinstance(items, list):
        yield from ((i, item) for i, item in enumerate(items) if isinstance(item, dict))


def _node_names(definition: dict[str, Any]) -> dict[str, int]:
    """Each node name -> the index of its first node."""
    names: dict[str, int] = {}
    for i, node in _objects(definition.get("nodes")):
        if isinstance(node.get("name"), str):
            names.setdefault(node["name"], i)
    return names


def _edges(definition: dict[str, Any]) -> Iterator[tuple[str, str | list[str], str]]:
    """``(path, source, target)`` of each well-formed edge; a one-item source list is a plain edge."""
    for i, edge in _objects(definition.get("edges")):
        source, target = edge.get("from"), edge.get("to")
        if isinstance(source, list):
            if not source or not all(isinstance(s, str) for s in source):
                continue  # not a list of names: the schema's check says so, and no other check can use it
            source = source[0] if len(source) == 1 else source
        if isinstance(source, (str, list)) and isinstance(target, str):
            yield f"/edges/{i}", source, target


def _targets(definition: dict[str, Any], names: dict[str, int]) -> dict[str, list[str]]:
    """Every node -> the nodes (and END) that may follow it: edges, joins, cases; unknown names left out."""
    targets: dict[str, list[str]] = {}

    def add(source: str, target: str) -> None:
        if source in names and (target in names or target == END_NAME):
            targets.setdefault(source, []).append(target)

    for _, source, target in _edges(definition):
        for item in [source] if isinstance(source, str) else source:
            add(item, target)
    for _, cond in _objects(definition.get("conditional_edges")):
        ends = [case.get("to") for _, case in _objects(cond.get("cases"))] + [cond.get("else")]
        for end in ends:
            if isinstance(cond.get("from"), str) and isinstance(end, str):
                add(cond["from"], end)
    return targets


def _unknown(path: str, name: str, names: Mapping[str, int], what: str, *, end_allowed: bool) -> list[Problem]:
    """A problem if ``name`` is not a node (END counts when ``end_allowed``)."""
    if name == END_NAME:
        return [] if end_allowed else [Problem(path, f"{what} cannot be END; name a node")]
    if name in names:
        return []
    return [Problem(path, f"{what} names unknown node {name!r}{_suggest(name, names)}; {_known('nodes', names)}")]


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _known(what: str, names: Iterable[str]) -> str:
    listed = sorted(names)
    if not listed:
        return f"there are no {what}"
    shown = ", ".join(listed[:8]) + (f" and {len(listed) - 8} more" if len(listed) > 8 else "")
    return f"the {what} are {shown}"


# -- JSON Schema errors as problems ----------------------------------------------------


def _schema_error_problems(error: ValidationError, base: str) -> list[Problem]:
    """One jsonschema error as problems with a path and a message that names the fix."""
    path = base + _pointer(error.absolute_path)
    instance, value = error.instance, error.validator_value
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    if error.validator == "required" and isinstance(instance, dict) and isinstance(value, list):
        return [
            Problem(f"{path}/{_escape(str(k))}", f"the required field {k!r} is missing")
            for k in value
            if k not in instance
        ]
    if error.validator == "additionalProperties" and value is False and isinstance(instance, dict):
        fields = list(schema.get("properties", {}))
        if "patternProperties" not in schema:
            return [
                Problem(f"{path}/{_escape(str(k))}", f"unknown field {k!r}; the fields here are {', '.join(fields)}")
                for k in instance
                if k not in fields
            ]
    return [Problem(path, _schema_message(error))]


def _schema_message(error: ValidationError) -> str:
    """What is wrong, with the value shortened and the schema's description as the fix when it has one."""
    value: Any = error.validator_value
    shown = _shown(error.instance)
    hint = error.schema.get("description") if isinstance(error.schema, Mapping) else None
    messages = {
        "type": lambda: f"{shown} is {json_kind(error.instance)}; expected {' or '.join(_as_list(value))}",
        "enum": lambda: f"{shown} is not one of {', '.join(json.dumps(v) for v in value)}",
        "const": lambda: f"{shown} must be {json.dumps(value)}",
        "minItems": lambda: f"needs at least {value} item{'' if value == 1 else 's'}",
        "maxItems": lambda: f"has more than {value} items",
        "minimum": lambda: f"{shown} is less than the minimum {value}",
        "maximum": lambda: f"{shown} is more than the maximum {value}",
        "exclusiveMinimum": lambda: f"{shown} must be more than {value}",
        "exclusiveMaximum": lambda: f"{shown} must be less than {value}",
    }
    message = messages[str(error.validator)]() if error.validator in messages else None
    if error.validator in ("pattern", "minLength", "maxLength", "propertyNames") and hint:
        message = f"{shown} is not allowed here"
    message = message or _shorten(error.message)
    return f"{message}: {hint}" if isinstance(hint, str) and error.validator != "type" else message


def _as_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _pointer(parts: Iterable[Any]) -> str:
    return "".join(f"/{_escape(str(part))}" for part in parts)


def _escape(part: str) -> str:
    """A JSON pointer segment: ``~`` and ``/`` escaped as ``~0`` and ``~1``."""
    return part.replace("~", "~0").replace("/", "~1")


def _shown(value: Any) -> str:
    """A value for a message, cut short: a message must not repeat a whole document."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return _shorten(text, 60)


def _shorten(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _sorted(problems: Iterable[Problem]) -> list[Problem]:
    """Problems once each, in document order (``/nodes/10`` after ``/nodes/9``)."""

    def key(problem: Problem) -> list[tuple[int, int | str]]:
        return [(0, int(p)) if p.isdigit() else (1, p) for p in problem.path.split("/")]

    return sorted(dict.fromkeys(problems), key=key)
