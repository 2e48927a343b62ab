"""Findings: what pyflakes reports, plus the checks a reviewer makes that pyflakes does not.

Each finding is ``{"file", "line", "rule", "severity", "message", "function",
"source", "fixable", "name"}``: ``source`` is ``"pyflakes"`` or ``"awe"``;
``rule`` is pyflakes' message class in kebab case (``unused-import``,
``undefined-name``, ...) or one of :data:`RULES`; ``fixable`` says whether the
refactor step will fix it (see :mod:`awe.graphs.code_review.refactor`);
``name`` is the import or parameter a fix targets.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from typing import Any

from pyflakes import checker as pyflakes_checker

from awe.graphs.code_review.extract import (
    FUNCTION_NODES,
    MODULE_SCOPE,
    TOO_DEEP,
    TOO_DEEP_PREFIX,
    iter_functions,
    own_nodes,
)

MAX_COMPLEXITY = 10
MAX_LINES = 50
MAX_ARGUMENTS = 5
MAX_NESTING = 4

RULES = {
    "syntax-error": "high",
    "source-too-large": "high",
    "too-deep-to-analyse": "high",
    "high-complexity": "high",
    "bare-except": "high",
    "mutable-default": "high",
    "eval-exec": "high",
    "long-function": "medium",
    "too-many-arguments": "medium",
    "deep-nesting": "medium",
    "missing-docstring": "low",
    "empty-source": "info",
}
"""awe's own rules and their severities."""

PYFLAKES_SEVERITY = {
    "undefined-name": "high",
    "undefined-local": "high",
    "undefined-export": "high",
    "return-outside-function": "high",
    "yield-outside-function": "high",
    "unused-import": "medium",
}
"""pyflakes rules that are not ``medium``: names that do not exist fail at run time."""

AUTO_FIXED = frozenset({"unused-import", "bare-except", "mutable-default"})
SIDE_EFFECT_MODULES = frozenset({"readline", "rlcompleter", "this", "antigravity", "site", "sitecustomize"})
"""Modules imported for what importing them does: an unused import of one is left alone."""

_BLOCKS = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.Try, ast.With, ast.AsyncWith, ast.Match, ast.TryStar)
_MUTABLE_LITERALS = (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)
_MUTABLE_BUILTINS = ("list", "dict", "set")
_CONSTANT_PARTS = (ast.Constant, ast.List, ast.Dict, ast.Set, ast.Tuple, ast.UnaryOp, ast.USub, ast.UAdd, ast.Load)


def finding(
    path: str,
    line: int | None,
    rule: str,
    message: str,
    *,
    function: str | None = None,
    severity: str | None = None,
    source: str = "awe",
    fixable: bool = False,
    name: str | None = None,
) -> dict[str, Any]:
    return {
        "file": path,
        "line": line,
        "rule": rule,
        "severity": severity or RULES[rule],
        "message": message,
        "function": function,
        "source": source,
        "fixable": fixable,
        "name": name,
    }


def file_findings(
    path: str, tree: ast.Module, measured: dict[str, Any], declined: list[str], used_elsewhere: Callable[[str], bool]
) -> list[dict[str, Any]]:
    """Every finding for one parsed file.

    ``declined``: rules whose fixes failed verification in this file;
    ``used_elsewhere(name)``: whether another submitted file mentions ``name``
    (an import it mentions may be a re-export, so it is not removed).
    """
    found = _one_too_deep(_pyflakes(path, tree, used_elsewhere) + _own_checks(path, tree, measured))
    if not tree.body:
        found.append(finding(path, None, "empty-source", "the source has no statements: there is nothing to review"))
    for f in found:
        if f["fixable"] and f["rule"] in declined:
            f["fixable"] = False
    return found


def _one_too_deep(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The analyses a deeply nested file defeated, as one finding: one cause costs the score once."""
    deep = [f for f in found if f["rule"] == "too-deep-to-analyse"]
    if len(deep) < 2:
        return found
    causes = "; ".join(f["message"].removeprefix(TOO_DEEP_PREFIX) for f in deep)
    merged = finding(deep[0]["file"], None, "too-deep-to-analyse", TOO_DEEP_PREFIX + causes, function=MODULE_SCOPE)
    return [f for f in found if f["rule"] != "too-deep-to-analyse"] + [merged]


def _pyflakes(path: str, tree: ast.Module, used_elsewhere: Callable[[str], bool]) -> list[dict[str, Any]]:
    try:
        messages = pyflakes_checker.Checker(tree, path).messages
    except TOO_DEEP as exc:
        message = f"{TOO_DEEP_PREFIX}pyflakes raised {type(exc).__name__}"
        return [finding(path, None, "too-deep-to-analyse", message, function=MODULE_SCOPE)]
    removable = _removable_import_lines(path, tree)
    found = []
    for m in messages:
        rule = _kebab(type(m).__name__)
        name = str(m.message_args[0]) if rule == "unused-import" else None
        bound = "" if name is None else name.rsplit(" as ", 1)[-1].rsplit(".", 1)[-1]
        found.append(
            finding(
                path,
                m.lineno,
                rule,
                m.message % m.message_args,
                severity=PYFLAKES_SEVERITY.get(rule, "medium"),
                source="pyflakes",
                fixable=rule == "unused-import" and m.lineno in removable and not used_elsewhere(bound),
                name=name,
            )
        )
    return found


def _kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def _removable_import_lines(path: str, tree: ast.Module) -> set[int]:
    """Lines of the import statements an unused-import fix may remove.

    Conservative, since an import that looks unused may be a re-export or be
    there for its side effects: nothing in an ``__init__.py`` or in a module
    with a ``*`` import (both are usually a package's interface); only
    statements directly in the module or a function body (an import inside
    ``try``/``if`` is usually an availability check); no module known to be
    imported for its side effects; nothing from a private module
    (``from _ssl import ...``: re-exporting an accelerator's names) and no
    dunder name (``from _struct import __doc__``).
    """
    if path.rsplit("/", 1)[-1] == "__init__.py":
        return set()
    if any(isinstance(n, ast.ImportFrom) and any(a.name == "*" for a in n.names) for n in tree.body):
        return set()
    bodies = [tree.body] + [node.body for _, node, _ in iter_functions(tree)]
    lines = set()
    for body in bodies:
        for stmt in body:
            if _plain_import(stmt) or (isinstance(stmt, ast.ImportFrom) and _plain_from_import(stmt)):
                lines.add(stmt.lineno)
    return lines


def _plain_import(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Import) and not any(a.name in SIDE_EFFECT_MODULES for a in stmt.names)


def _plain_from_import(stmt: ast.ImportFrom) -> bool:
    module = stmt.module or ""
    private = module.startswith("_") and not module.startswith("__")
    dunder = any(a.name.startswith("__") for a in stmt.names)
    return module != "__future__" and not private and not dunder


def _own_checks(path: str, tree: ast.Module, measured: dict[str, Any]) -> list[dict[str, Any]]:
    found = [
        finding(path, None, "too-deep-to-analyse", e["message"], function=MODULE_SCOPE)
        for e in measured.get("errors") or []
    ]
    complexity = {(c["function"], c["line"]): c for c in measured.get("functions") or []}
    found += _scope_checks(path, MODULE_SCOPE, tree)
    for qualname, node, is_method in iter_functions(tree):
        found += _scope_checks(path, qualname, node)
        found += _function_checks(path, qualname, node, is_method, complexity.get((qualname, node.lineno)))
    return found


def _scope_checks(path: str, scope_name: str, scope: ast.AST) -> list[dict[str, Any]]:
    found = []
    for node in own_nodes(scope):
        if isinstance(node, ast.ExceptHandler) and node.type is None:
            message = "bare `except:` also catches KeyboardInterrupt and SystemExit"
            fixable = not _reraises(node)
            message += "; catch Exception (or narrower)" if fixable else "; it re-raises: say `except BaseException:`"
            found.append(finding(path, node.lineno, "bare-except", message, function=scope_name, fixable=fixable))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("eval", "exec"):
            message = f"{node.func.id}() runs arbitrary code; parse the data instead (ast.literal_eval, json)"
            found.append(finding(path, node.lineno, "eval-exec", message, function=scope_name))
    return found


def _reraises(handler: ast.ExceptHandler) -> bool:
    """A handler with a bare ``raise`` cleans up and lets everything through: narrowing it would change that."""
    return any(isinstance(n, ast.Raise) and n.exc is None for n in own_nodes(handler))


def _function_checks(
    path: str, qualname: str, node: Any, is_method: bool, measured: dict[str, Any] | None
) -> list[dict[str, Any]]:
    line = node.lineno
    found = []
    if measured and measured["complexity"] > MAX_COMPLEXITY:
        cc, rank = measured["complexity"], measured["rank"]
        message = f"cyclomatic complexity {cc} (rank {rank}) > {MAX_COMPLEXITY}"
        found.append(finding(path, line, "high-complexity", message, function=qualname))
    lines = (node.end_lineno or line) - line + 1
    if lines > MAX_LINES:
        found.append(finding(path, line, "long-function", f"{lines} lines > {MAX_LINES}", function=qualname))
    arguments = _counted_arguments(node.args, is_method)
    if arguments > MAX_ARGUMENTS:
        message = f"{arguments} arguments > {MAX_ARGUMENTS}"
        found.append(finding(path, line, "too-many-arguments", message, function=qualname))
    if not node.name.startswith("_") and ast.get_docstring(node) is None:
        message = f"public function {node.name}() has no docstring"
        found.append(finding(path, line, "missing-docstring", message, function=qualname))
    depth, deepest = _nesting(node.body)
    if depth > MAX_NESTING:
        message = f"blocks nested {depth} levels deep > {MAX_NESTING}"
        found.append(finding(path, deepest, "deep-nesting", message, function=qualname))
    for arg, default in defaults(node.args):
        if not is_mutable(default):
            continue
        fixable = is_fixable(default) and only_read(node, arg)
        message = f"argument {arg!r} has a mutable default, created once and shared by every call"
        if not fixable:
            message += "; not fixed automatically: the function changes or hands out the object, or reads names"
        found.append(
            finding(path, default.lineno, "mutable-default", message, function=qualname, fixable=fixable, name=arg)
        )
    return found


def _counted_arguments(args: ast.arguments, is_method: bool) -> int:
    """Argument count, not counting a method's ``self``/``cls``."""
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    if is_method and names and names[0] in ("self", "cls"):
        return len(names) - 1
    return len(names)


def defaults(args: ast.arguments) -> list[tuple[str, ast.expr]]:
    """``(argument name, default expression)`` for every argument with a default."""
    positional = [*args.posonlyargs, *args.args]
    pairs = list(zip((a.arg for a in positional[len(positional) - len(args.defaults) :]), args.defaults, strict=True))
    pairs += [(a.arg, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None]
    return pairs


def is_mutable(node: ast.expr) -> bool:
    """A list/dict/set literal or comprehension, or an empty ``list()``/``dict()``/``set()`` call."""
    return isinstance(node, _MUTABLE_LITERALS) or _is_empty_builtin_call(node)


def is_fixable(node: ast.expr) -> bool:
    """True if evaluating the default at call time gives the value it had at definition time.

    That holds for literals of constants and an empty ``list()``/``dict()``/``set()``;
    a literal or comprehension that reads names could change meaning.
    """
    return _is_empty_builtin_call(node) or all(isinstance(n, _CONSTANT_PARTS) for n in ast.walk(node))


READ_ONLY_CALLS = frozenset(
    {"len", "sum", "sorted", "min", "max", "any", "all", "iter", "enumerate", "zip", "reversed", "bool", "str", "repr"}
    | {"list", "tuple", "set", "frozenset", "dict", "isinstance", "hash", "map", "filter", "print", "format"}
)
READ_ONLY_METHODS = frozenset(
    {"get", "keys", "values", "items", "copy", "count", "index", "issubset", "issuperset", "union", "intersection"}
    | {"difference", "symmetric_difference", "isdisjoint", "__contains__", "__len__", "__getitem__"}
)


def only_read(func: Any, arg: str) -> bool:
    """True if the function only reads ``arg``'s object: never changes it, returns it or passes it on.

    Only then is ``None`` plus a guard behaviour-preserving: a default that is
    appended to, stored into, returned or handed to an unknown function may be
    shared on purpose (a cache, a counter), so that one is left for a person.
    Reading means: iterating, indexing, ``in``, comparing, calling a read-only
    method (``get``, ``items``, ...) or passing it to a builtin that does not
    change it (``len``, ``sum``, ``sorted``, ...). Rebinding the name ends its
    link to the default, which is fine too.
    """
    parents: dict[int, ast.AST] = {}
    for parent in ast.walk(func):
        for child in ast.iter_child_nodes(parent):
            parents[id(child)] = parent
    uses = [n for n in ast.walk(func) if isinstance(n, ast.Name) and n.id == arg]
    return all(isinstance(use.ctx, ast.Store) or _read_use(use, parents.get(id(use))) for use in uses)


def _read_use(use: ast.Name, parent: ast.AST | None) -> bool:
    if isinstance(parent, ast.Attribute):
        return parent.attr in READ_ONLY_METHODS
    if isinstance(parent, ast.Subscript):
        return isinstance(parent.ctx, ast.Load) and parent.value is use
    if isinstance(parent, ast.Call):
        return isinstance(parent.func, ast.Name) and parent.func.id in READ_ONLY_CALLS and use is not parent.func
    if isinstance(parent, (ast.Return, ast.Yield, ast.YieldFrom, ast.AugAssign, ast.Assign, ast.Lambda)):
        return False  # handed out, changed in place, or aliased to another name
    return not isinstance(parent, (ast.Delete, ast.Starred, ast.keyword, ast.NamedExpr))


def _is_empty_builtin_call(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _MUTABLE_BUILTINS
        and not node.args
        and not node.keywords
    )


def _nesting(body: list[ast.stmt]) -> tuple[int, int | None]:
    """The deepest block level in a function ``body`` and the first line reaching it (an explicit stack)."""
    deepest, line = 0, None
    stack = [(body, 0)]
    while stack:
        stmts, depth = stack.pop()
        for stmt in stmts:
            if isinstance(stmt, (*FUNCTION_NODES, ast.ClassDef)):
                continue  # a nested function or class is reviewed on its own
            level = depth + 1 if isinstance(stmt, _BLOCKS) else depth
            if level > deepest or (level == deepest and line is not None and stmt.lineno < line):
                deepest, line = level, stmt.lineno
            stack.extend(_sub_blocks(stmt, level, depth))
    return deepest, line


def _sub_blocks(stmt: ast.stmt, level: int, depth: int) -> list[tuple[list[ast.stmt], int]]:
    """The statement lists inside ``stmt``; an ``elif`` stays at the level of its ``if``."""
    if isinstance(stmt, ast.If) and len(stmt.orelse) == 1 and isinstance(stmt.orelse[0], ast.If):
        return [(stmt.body, level), (stmt.orelse, depth)]
    blocks = [getattr(stmt, field, None) or [] for field in ("body", "orelse", "finalbody")]
    blocks += [h.body for h in getattr(stmt, "handlers", [])]
    blocks += [c.body for c in getattr(stmt, "cases", [])]
    return [(b, level) for b in blocks if b]
