"""Parse a source and list its functions: the facts every later step measures or fixes.

Parsing is where hostile input shows first. ``ast.parse`` copes with a few
thousand nesting levels but raises ``RecursionError``/``MemoryError`` past
that, ``SyntaxError``/``ValueError`` on a NUL byte and ``UnicodeEncodeError``
on a lone surrogate; each is a finding about the code (file, line, message),
never a crash. The tree walks here use explicit stacks, so they handle any tree
the parser builds (a long ``elif`` chain is as deep as it is long).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import Any

FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef)
TOO_DEEP = (RecursionError, MemoryError)
"""What the parser, radon and libcst raise on a tree nested deeper than they can recurse."""

TOO_DEEP_PREFIX = "source is too deeply nested to analyse: "
MODULE_SCOPE = "<module>"
DOCSTRING_CHARS = 300
"""A function record keeps this much of its docstring: enough to read, small enough for the state."""


def parse(code: str) -> tuple[ast.Module | None, dict[str, Any] | None]:
    """The tree, or ``None`` and a ``{"message", "line"}`` record of why Python cannot parse ``code``."""
    try:
        return ast.parse(code), None
    except SyntaxError as exc:
        return None, {"message": exc.msg or str(exc), "line": exc.lineno or _nul_line(code)}
    except UnicodeEncodeError as exc:  # before ValueError, its base class
        bad = exc.object[exc.start : exc.end]
        return None, {"message": f"{bad!r} is not valid Unicode text ({exc.reason})", "line": _line_at(code, exc.start)}
    except ValueError as exc:  # NUL bytes, on the Pythons that raise ValueError for them
        return None, {"message": str(exc), "line": _nul_line(code)}
    except TOO_DEEP as exc:
        return None, {"message": too_deep_message("the Python parser", exc), "line": None}


def too_deep_message(analysis: str, exc: BaseException) -> str:
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return f"{TOO_DEEP_PREFIX}{analysis} raised {detail}"


def _line_at(code: str, index: int) -> int:
    return code.count("\n", 0, index) + 1


def _nul_line(code: str) -> int | None:
    """The line of the first NUL byte, which the parser rejects without saying where."""
    index = code.find("\x00")
    return None if index < 0 else _line_at(code, index)


def iter_functions(tree: ast.AST) -> Iterator[tuple[str, Any, bool]]:
    """Yield ``(qualified name, def node, is_method)`` for every function, nested ones included, in source order."""
    stack: list[tuple[ast.AST, str, bool]] = [(tree, "", False)]
    while stack:
        node, prefix, in_class = stack.pop()
        if isinstance(node, FUNCTION_NODES):
            yield prefix + node.name, node, in_class
            prefix, in_class = prefix + node.name + ".", False
        elif isinstance(node, ast.ClassDef):
            prefix, in_class = prefix + node.name + ".", True
        stack.extend((child, prefix, in_class) for child in reversed(list(ast.iter_child_nodes(node))))


def own_nodes(scope: ast.AST) -> Iterator[ast.AST]:
    """Every node inside ``scope`` that does not belong to a nested function."""
    stack = list(ast.iter_child_nodes(scope))
    while stack:
        node = stack.pop()
        if isinstance(node, FUNCTION_NODES):
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def function_records(path: str, tree: ast.Module) -> list[dict[str, Any]]:
    """One record per function and method of ``tree``, in line order."""
    records = [_record(path, qualname, node, is_method) for qualname, node, is_method in iter_functions(tree)]
    return sorted(records, key=lambda f: f["lineno"])


def _record(path: str, qualname: str, node: Any, is_method: bool) -> dict[str, Any]:
    docstring = ast.get_docstring(node)
    end = node.end_lineno or node.lineno
    return {
        "file": path,
        "name": node.name,
        "qualname": qualname,
        "lineno": node.lineno,
        "end_lineno": end,
        "lines": end - node.lineno + 1,
        "args": arg_names(node.args),
        "docstring": None if docstring is None else docstring[:DOCSTRING_CHARS],
        "is_method": is_method,
    }


def arg_names(args: ast.arguments) -> list[str]:
    names = [a.arg for a in (*args.posonlyargs, *args.args)]
    if args.vararg:
        names.append("*" + args.vararg.arg)
    names += [a.arg for a in args.kwonlyargs]
    if args.kwarg:
        names.append("**" + args.kwarg.arg)
    return names
