"""Tools: named Python functions that a graph written in JSON can call as its nodes.

A graph defined over the API cannot carry code, only names. A tool is the code behind such a
name: a function of ``(state, **args)`` or ``(state, ctx, **args)``, sync or async, registered once
per process with :func:`tool`. A JSON node names the tool and gives the fixed ``args`` it is called
with; the coordinator checks the names when the graph is created, and every worker finds the same
functions because it imports the same modules.

::

    from awe import tool

    @tool("text.shout", parameters={"type": "object", "properties": {"times": {"type": "integer"}}})
    def shout(state, *, times=1):
        '''Upper-case ``state['text']``, repeated ``times`` times.'''
        return {"text": state["text"].upper() * times}
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["TOOL_NAME_PATTERN", "Tool", "ToolError", "registered_tools", "tool"]

F = TypeVar("F", bound=Callable[..., Any])

TOOL_NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,127}")
"""Tool names (fullmatch): a namespace-like ``module.step``, safe in URLs, logs and JSON."""

_REGISTRY: dict[str, Tool] = {}


class ToolError(ValueError):
    """A tool cannot be registered: a bad name, signature or parameters schema, or a name taken twice."""


@dataclass(frozen=True)
class Tool:
    """A registered function and what a JSON node needs to know to call it."""

    name: str
    fn: Callable[..., Any]
    """``fn(state, **args)`` or ``fn(state, ctx, **args)``; sync or async."""
    description: str
    parameters: dict[str, Any] | None
    """A JSON Schema of the fixed ``args`` a node passes; None when the tool declares none."""

    @property
    def is_async(self) -> bool:
        """Whether calling the tool returns an awaitable: the engine runs it on the loop, not in a thread."""
        return inspect.iscoroutinefunction(self.fn) or inspect.iscoroutinefunction(type(self.fn).__call__)

    @property
    def takes_context(self) -> bool:
        """Whether the tool wants the job's :class:`~awe.graph.context.Context` as its second argument."""
        return _positional_count(self.name, self.fn) == 2

    def describe(self) -> dict[str, Any]:
        """What ``GET /tools`` shows of the tool: enough to write a node that calls it."""
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


def tool(name: str, *, description: str | None = None, parameters: dict[str, Any] | None = None) -> Callable[[F], F]:
    """Register the decorated function as the tool ``name`` in this process; the function is returned unchanged.

    ``description`` defaults to the first paragraph of the docstring. ``parameters`` is a JSON Schema
    that every JSON node's ``args`` for this tool must match when its graph is created, so a bad
    argument is refused then rather than failing a run later. A second registration of ``name``
    by a different function raises :class:`ToolError`; registering the same function again (a
    module imported twice) replaces the first.
    """
    if not isinstance(name, str) or not TOOL_NAME_PATTERN.fullmatch(name):
        raise ToolError(
            f"tool name {name!r} is not allowed: use 1-128 letters, digits, '_', '.' or '-', starting with a letter"
        )
    if parameters is not None:
        _check_parameters(name, parameters)

    def register(fn: F) -> F:
        entry = Tool(name, fn, _description(fn) if description is None else description, parameters)
        _positional_count(name, fn)  # refuse a signature no node could call, now rather than at run time
        known = _REGISTRY.get(name)
        if known is not None and _origin(known.fn) != _origin(fn):
            raise ToolError(
                f"tool {name!r} is registered twice: by {_origin(known.fn)} and by {_origin(fn)}; "
                "give one of them another name"
            )
        _REGISTRY[name] = entry
        return fn

    return register


def registered_tools() -> dict[str, Tool]:
    """Every tool registered in this process so far (a copy: changing it registers nothing)."""
    return dict(_REGISTRY)


def _positional_count(name: str, fn: Callable[..., Any]) -> int:
    """1 for ``fn(state, ...)``, 2 for ``fn(state, ctx, ...)``: the required positional parameters.

    The args a node passes go by keyword, so they must be keyword-only or have defaults;
    otherwise ``fn(state, url)`` would be read as taking a context.
    """
    if not callable(fn):
        raise ToolError(f"tool {name!r} is not callable")
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError) as exc:
        raise ToolError(f"cannot read the signature of tool {name!r}: {exc}") from exc
    required = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    if len(required) not in (1, 2):
        raise ToolError(
            f"tool {name!r} must take (state, **args) or (state, ctx, **args), but it has {len(required)} "
            "required positional parameters; make its args keyword-only (after *) or give them defaults"
        )
    return len(required)


def _check_parameters(name: str, parameters: Any) -> None:
    """Refuse a ``parameters`` value that is not a JSON Schema, naming the first thing wrong with it."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    if not isinstance(parameters, dict):
        raise ToolError(
            f"the parameters of tool {name!r} must be a JSON Schema object, not {type(parameters).__name__}"
        )
    try:
        validator_for(parameters, default=Draft202012Validator).check_schema(parameters)
    except SchemaError as exc:
        raise ToolError(f"the parameters of tool {name!r} are not a valid JSON Schema: {exc.message}") from None


def _description(fn: Callable[..., Any]) -> str:
    """The docstring's first paragraph, on one line: what ``GET /tools`` shows by default."""
    doc = inspect.getdoc(fn) or ""
    return " ".join(doc.split("\n\n", 1)[0].split())


def _origin(fn: Callable[..., Any]) -> str:
    """``module.qualname``: the same function imported twice has the same origin."""
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
