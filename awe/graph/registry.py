"""Find the graphs a process serves: the built-in ones plus those in ``--graphs`` modules.

The coordinator and every worker call :func:`load_graphs` with the same module
list, so both sides resolve a graph name to the same code.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Iterable

from awe.graph.builder import Graph
from awe.graph.compiled import CompiledGraph
from awe.graph.errors import GraphError

BUILTIN_MODULES = ("awe.graphs.code_review",)


class GraphLoadError(RuntimeError):
    """A graph module failed to import or defined a graph that does not compile."""


def load_graphs(modules: Iterable[str] = (), *, search_path: str | None = None) -> dict[str, CompiledGraph]:
    """Import the modules and compile every ``Graph`` they define at module level.

    ``search_path`` (the folder awe was started from, by default) is put on
    ``sys.path`` so that ``--graphs my_graphs`` finds ``./my_graphs.py``
    without ``PYTHONPATH``.
    """
    folder = os.path.abspath(search_path or os.getcwd())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    graphs: dict[str, CompiledGraph] = {}
    origin: dict[str, str] = {}
    for module_name in (*BUILTIN_MODULES, *modules):
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise GraphLoadError(f"cannot import graph module {module_name!r}: {exc}") from exc
        for value in vars(module).values():
            if isinstance(value, Graph):
                try:
                    compiled = value.compile()
                except GraphError as exc:
                    raise GraphLoadError(f"in module {module_name!r}: {exc}") from exc
            elif isinstance(value, CompiledGraph):
                compiled = value
            else:
                continue
            known = graphs.get(compiled.name)
            if known is not None and known.fingerprint != compiled.fingerprint:
                raise GraphLoadError(
                    f"graph {compiled.name!r} is defined twice, in {origin[compiled.name]!r} and {module_name!r}"
                )
            graphs[compiled.name] = compiled
            origin[compiled.name] = module_name
    return graphs


def load_graphs_or_exit(modules: Iterable[str]) -> dict[str, CompiledGraph]:
    """For the command line: a graph module that fails stops the start, with its traceback."""
    try:
        return load_graphs(modules)
    except GraphLoadError as exc:
        traceback.print_exception(exc.__cause__ or exc, file=sys.stderr)
        print(f"awe: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
