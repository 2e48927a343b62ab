"""The built-in ``code_review_agent`` graph: a rule-based Python code reviewer.

A first honest version of a code review agent. It uses Python's ``ast`` and
``radon`` only (no LLM), so every finding is reproducible and explainable::

    extract_functions -> check_complexity -> detect_issues --quality_gate--> END
           ^                                                      |
           +------------------------- refactor <------------------+

Input state:

* ``raw_code`` (str, required): the Python source to review.
* ``quality_threshold`` (0-100, default 80): the score at which the review stops.
* ``max_iterations`` (default 3): how many extract/detect passes at most.

State produced (all JSON-serialisable):

* ``code``: the current source (``raw_code`` on the first pass, then the
  output of ``refactor``).
* ``iteration``: 1 after the first pass, +1 per loop.
* ``functions``: one record per function or method (see :func:`extract_functions`).
* ``syntax_error``: ``None``, or ``{"message", "line"}`` if ``code`` does not parse.
  Source Python itself cannot compile counts: nested too deeply for the parser
  (the message names the ``RecursionError``/``MemoryError``), a NUL byte, a
  lone surrogate. ``line`` is ``None`` when no line can be named.
* ``complexity``: ``{qualified function name: cyclomatic complexity}`` (radon).
* ``maintainability``: radon's maintainability index (0-100), ``None`` on a syntax error
  or when radon cannot measure the code.
* ``analysis_errors``: ``[{"analysis", "error", "message"}]``, one per radon
  analysis that could not handle code which does parse (see "Hostile input").
* ``issues``: ``[{"function", "line", "kind", "message", "severity"}]``.
* ``quality_score``: 0-100, see :func:`quality_score`.
* ``history``: one ``{"iteration", "quality_score", "issues"}`` entry per pass.
* ``summary``: e.g. ``"3 functions, 2 issues, quality 85/100"``.
* ``refactorings``: one ``{"iteration", "changes": [{"kind", "function"}]}``
  entry per ``refactor`` pass, plus ``"error"`` when the fixes could not be
  written back (the code is then left as it was).

Hostile input. ``ast.parse`` itself copes with a few thousand nesting levels,
but radon's visitors and ``ast.unparse`` recurse once per level and give up
after a few hundred: ``return 1+1+...+1`` with a thousand terms, or a long
``elif`` chain, is valid Python they cannot handle. Such code is a finding,
never a crash: a ``too_deep_to_analyse`` issue (high severity) naming the
analysis and the exception, and the run completes. This module's own tree
walks use explicit stacks, so they handle any tree the parser builds. Every
node also has a timeout (:data:`NODE_TIMEOUT_SECONDS`) as the backstop for an
input nobody foresaw.

Quality score::

    quality = 100 - sum(SEVERITY_WEIGHTS[issue.severity]) - max(0, MI_FLOOR - maintainability) / 2

clamped to 0-100 and rounded to an int, with ``SEVERITY_WEIGHTS`` = high 15,
medium 8, low 3 and ``MI_FLOOR`` = 40 (so clean code with a maintainability
index of 40 or more scores 100; a maintainability index of 0 alone costs 20
points). Code that does not parse scores 0.

Nodes run in worker processes, so they are pure functions of the state: they
read it, never mutate it, and return the keys they change.
"""

from __future__ import annotations

import ast
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from radon.complexity import cc_visit
from radon.metrics import mi_visit

from awe.graph import END, Graph
from awe.graph.tools import tool

__all__ = [
    "check_complexity",
    "code_review_agent",
    "detect_issues",
    "extract_functions",
    "quality_gate",
    "quality_score",
    "refactor",
]

DEFAULT_QUALITY_THRESHOLD = 80
DEFAULT_MAX_ITERATIONS = 3

MAX_COMPLEXITY = 10
MAX_LINES = 50
MAX_PARAMETERS = 5
MAX_NESTING = 4

SEVERITY_WEIGHTS = {"high": 15, "medium": 8, "low": 3}
MI_FLOOR = 40.0

MODULE_SCOPE = "<module>"

NODE_TIMEOUT_SECONDS = 60.0
"""How long each node may run before the engine fails the run with ``NodeTimeout``.

The nodes are deterministic CPU work on one source, so a retry cannot help and
none is configured; the timeout is the backstop that turns an analysis that
never ends into a clear failure. A 2 MB source of small functions takes
4-12 s per node on one core (radon's pass is the slowest), so 60 s leaves
about five times that for a loaded machine. A sync node past its timeout is abandoned, not stopped
(see ``Graph.add_node``): this bounds the run, not the CPU its thread spends.
"""

_TOO_DEEP = (RecursionError, MemoryError)
"""What the parser, radon and ``ast.unparse`` raise on a tree nested deeper than they can recurse."""

_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef)
_BLOCKS = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.Try, ast.With, ast.AsyncWith, ast.Match) + (
    (ast.TryStar,) if hasattr(ast, "TryStar") else ()
)
_MUTABLE_LITERALS = (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)
_MUTABLE_BUILTINS = ("list", "dict", "set")
_CONSTANT_PARTS = (ast.Constant, ast.List, ast.Dict, ast.Set, ast.Tuple, ast.UnaryOp, ast.USub, ast.UAdd, ast.Load)

_T = TypeVar("_T")


_AST_LOCK = threading.Lock()
"""CPython 3.11 keeps the AST constructor's recursion depth in a way that two threads building deep
trees at the same moment can break (``SystemError: AST constructor recursion depth mismatch``). A
worker runs sync nodes in threads, so the agent's steps, which all parse, run one at a time in a
process; they are CPU-bound, so the GIL would have serialised them anyway."""


def _one_at_a_time(step: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    @functools.wraps(step)
    def locked(state: dict[str, Any]) -> dict[str, Any]:
        with _AST_LOCK:
            return step(state)

    return locked


# -- nodes --------------------------------------------------------------------


@tool("code_review.extract_functions")
@_one_at_a_time
def extract_functions(state: dict[str, Any]) -> dict[str, Any]:
    """Parse the current code and list its functions, so later nodes know what to measure.

    On the first pass ``code`` does not exist yet and is copied from
    ``raw_code``; later passes review the output of ``refactor``. Code that
    does not parse is recorded as ``syntax_error`` (with no functions) instead
    of failing the node: a syntax error is a review finding, not a crash.
    """
    iteration = int(state.get("iteration") or 0)
    code = state["code"] if iteration and isinstance(state.get("code"), str) else _raw_code(state)
    tree, syntax_error = _parse(code)
    functions = [] if tree is None else [_function_record(q, n, m) for q, n, m in _iter_functions(tree)]
    return {
        "code": code,
        "iteration": iteration + 1,
        "functions": sorted(functions, key=lambda f: f["lineno"]),
        "syntax_error": syntax_error,
    }


@tool("code_review.check_complexity")
@_one_at_a_time
def check_complexity(state: dict[str, Any]) -> dict[str, Any]:
    """Measure cyclomatic complexity per function and the module's maintainability (radon).

    These numbers drive the "too complex" findings and part of the quality
    score. Complexity is keyed by qualified name (``Class.method``), matched
    to radon's blocks by line number so that methods and closures line up
    with ``functions``.

    Radon recurses once per nesting level, so code nested a few hundred
    levels deep is recorded in ``analysis_errors`` (and the measurement left
    empty) rather than failing the node.
    """
    if state.get("syntax_error"):
        return {"complexity": {}, "maintainability": None, "analysis_errors": []}
    code = state["code"]
    names = {f["lineno"]: f["qualname"] for f in state.get("functions", [])}
    complexity, cc_error = _attempt("radon cc_visit", lambda: _complexity(code, names))
    maintainability, mi_error = _attempt("radon mi_visit", lambda: round(float(mi_visit(code, True)), 2))
    return {
        "complexity": complexity or {},
        "maintainability": maintainability,
        "analysis_errors": [e for e in (cc_error, mi_error) if e is not None],
    }


@tool("code_review.detect_issues")
@_one_at_a_time
def detect_issues(state: dict[str, Any]) -> dict[str, Any]:
    """Turn the measurements and an AST scan into issues, a quality score and a summary.

    This is where the review's verdict is formed: each issue names the
    function, line, kind and severity so a human can act on it; the score
    (see :func:`quality_score`) is what the quality gate compares to the
    threshold, and ``history`` records it per pass so the loop's progress is
    visible after the run.
    """
    syntax_error = state.get("syntax_error")
    if syntax_error:
        issues = [_issue(MODULE_SCOPE, syntax_error.get("line"), "syntax_error", syntax_error["message"], "high")]
    else:
        issues = _function_issues(state) + _analysis_issues(state) + _code_issues(state["code"])
    issues.sort(key=lambda i: (i["line"] or 0, i["kind"]))
    score = quality_score(issues, state.get("maintainability"), syntax_error=bool(syntax_error))
    iteration = int(state.get("iteration") or 0)
    history = list(state.get("history") or [])
    history.append({"iteration": iteration, "quality_score": score, "issues": len(issues)})
    return {
        "issues": issues,
        "quality_score": score,
        "history": history,
        "summary": _summary(state, issues, score),
    }


def quality_gate(state: dict[str, Any]) -> str:
    """Route to ``"done"`` when the review is good enough or cannot improve, else ``"refactor"``.

    It stops on a syntax error (nothing can be refactored), when the score
    reaches ``quality_threshold``, when the last refactor pass found nothing
    it could fix (another pass would review the same code), or when
    ``max_iterations`` passes have run.
    """
    if state.get("syntax_error"):
        return "done"
    passes = state.get("refactorings") or []
    if passes and not passes[-1].get("changes"):
        return "done"
    if state.get("quality_score", 0) >= _setting(state, "quality_threshold", DEFAULT_QUALITY_THRESHOLD):
        return "done"
    if int(state.get("iteration") or 0) >= _setting(state, "max_iterations", DEFAULT_MAX_ITERATIONS):
        return "done"
    return "refactor"


@tool("code_review.refactor")
@_one_at_a_time
def refactor(state: dict[str, Any]) -> dict[str, Any]:
    """Apply the fixes that are safe to automate, so the next pass reviews better code.

    The fixes are AST transforms written back with ``ast.unparse``, which
    normalises formatting and **drops comments**; the code is only rewritten
    when at least one fix applies. The fixes:

    * a placeholder docstring ``"TODO: document <name>."`` on functions
      without one (a reminder, not documentation);
    * mutable default arguments (list/dict/set literals of constants, or an
      empty ``list()``/``dict()``/``set()``) become
      ``None`` plus ``if x is None: x = <literal>`` at the top of the body, so
      each call gets a fresh object (a caller passing ``None`` explicitly now
      gets the literal too); literals containing names are left alone, since
      evaluating them at call time could change their meaning;
    * bare ``except:`` becomes ``except Exception:`` (``KeyboardInterrupt``
      and ``SystemExit`` now propagate, which is the intent).

    Complexity, length, parameter, ``print`` and nesting issues are reported
    only. If nothing applies the pass records an empty change list; the loop
    is bounded by ``max_iterations``. If ``ast.unparse`` cannot write a deeply
    nested tree back, the code is kept and the pass records no changes and an
    ``"error"`` saying why, which also ends the loop.
    """
    code, record = _rewrite(state.get("code") or _raw_code(state))
    refactorings = list(state.get("refactorings") or [])
    refactorings.append({"iteration": int(state.get("iteration") or 0), **record})
    return {"code": code, "refactorings": refactorings}


def quality_score(issues: list[dict[str, Any]], maintainability: float | None, *, syntax_error: bool = False) -> int:
    """Score code 0-100: 100 minus issue penalties minus a low-maintainability penalty.

    ``100 - sum(SEVERITY_WEIGHTS[severity]) - max(0, MI_FLOOR - maintainability) / 2``,
    clamped to 0-100 and rounded; high = 15, medium = 8, low = 3, MI_FLOOR = 40.
    Code that does not parse scores 0. Clean code with a reasonable
    maintainability index scores 100.
    """
    if syntax_error:
        return 0
    penalty = float(sum(SEVERITY_WEIGHTS.get(i["severity"], 0) for i in issues))
    if maintainability is not None:
        penalty += max(0.0, MI_FLOOR - float(maintainability)) / 2
    return round(min(100.0, max(0.0, 100.0 - penalty)))


# -- the graph ----------------------------------------------------------------

code_review_agent = Graph("code_review_agent")
code_review_agent.add_node("extract_functions", extract_functions, timeout=NODE_TIMEOUT_SECONDS)
code_review_agent.add_node("check_complexity", check_complexity, timeout=NODE_TIMEOUT_SECONDS)
code_review_agent.add_node("detect_issues", detect_issues, timeout=NODE_TIMEOUT_SECONDS)
code_review_agent.add_node("refactor", refactor, timeout=NODE_TIMEOUT_SECONDS)
code_review_agent.add_edge("extract_functions", "check_complexity")
code_review_agent.add_edge("check_complexity", "detect_issues")
code_review_agent.add_conditional_edge("detect_issues", quality_gate, {"done": END, "refactor": "refactor"})
code_review_agent.add_edge("refactor", "extract_functions")
code_review_agent.set_entry_point("extract_functions")


# -- helpers: input and parsing -----------------------------------------------


def _raw_code(state: dict[str, Any]) -> str:
    raw = state.get("raw_code")
    if not isinstance(raw, str):
        raise ValueError("code_review_agent needs initial_state['raw_code']: the Python source to review, as a string")
    return raw


def _setting(state: dict[str, Any], key: str, default: int) -> float:
    value = state.get(key)
    return default if value is None else float(value)


def _parse(code: str) -> tuple[ast.Module | None, dict[str, Any] | None]:
    """The tree, or ``None`` and a ``{"message", "line"}`` record of why Python cannot parse ``code``.

    Besides syntax errors, the parser raises ``UnicodeEncodeError`` on a lone
    surrogate, ``SyntaxError`` or ``ValueError`` on a NUL byte (by Python
    version), and ``RecursionError`` or ``MemoryError`` on input nested
    thousands of levels deep; all are findings about the code, not crashes.
    """
    try:
        return ast.parse(code), None
    except SyntaxError as exc:
        return None, {"message": exc.msg or str(exc), "line": exc.lineno or _nul_line(code)}
    except UnicodeEncodeError as exc:  # before ValueError, its base class
        bad = exc.object[exc.start : exc.end]
        return None, {"message": f"{bad!r} is not valid Unicode text ({exc.reason})", "line": _line_at(code, exc.start)}
    except ValueError as exc:  # NUL bytes, on the Pythons that raise ValueError for them
        return None, {"message": str(exc), "line": _nul_line(code)}
    except _TOO_DEEP as exc:
        return None, {"message": _too_deep_message("the Python parser", exc), "line": None}


def _line_at(code: str, index: int) -> int:
    return code.count("\n", 0, index) + 1


def _nul_line(code: str) -> int | None:
    """The line of the first NUL byte, which the parser rejects without saying where."""
    index = code.find("\x00")
    return None if index < 0 else _line_at(code, index)


def _too_deep_message(analysis: str, exc: BaseException) -> str:
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return f"source is too deeply nested to analyse: {analysis} raised {detail}"


def _attempt(analysis: str, measure: Callable[[], _T]) -> tuple[_T | None, dict[str, Any] | None]:
    """``measure()``, or ``None`` and an ``analysis_errors`` record when the code is nested too deeply for it."""
    try:
        return measure(), None
    except _TOO_DEEP as exc:
        error = {"analysis": analysis, "error": type(exc).__name__, "message": _too_deep_message(analysis, exc)}
        return None, error


def _iter_functions(tree: ast.AST) -> Iterator[tuple[str, Any, bool]]:
    """Yield ``(qualified name, def node, is_method)`` for every function, nested ones included, in source order.

    It walks with an explicit stack: a tree the parser accepts can be
    thousands of levels deep (a long ``elif`` chain), more than recursion allows.
    """
    stack: list[tuple[ast.AST, str, bool]] = [(tree, "", False)]
    while stack:
        node, prefix, in_class = stack.pop()
        if isinstance(node, _FUNCS):
            yield prefix + node.name, node, in_class
            prefix, in_class = prefix + node.name + ".", False
        elif isinstance(node, ast.ClassDef):
            prefix, in_class = prefix + node.name + ".", True
        stack.extend((child, prefix, in_class) for child in reversed(list(ast.iter_child_nodes(node))))


def _own_nodes(scope: ast.AST) -> Iterator[ast.AST]:
    """Every node inside ``scope`` that does not belong to a nested function."""
    stack = list(ast.iter_child_nodes(scope))
    while stack:
        node = stack.pop()
        if isinstance(node, _FUNCS):
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _scopes(tree: ast.Module) -> Iterator[tuple[str, ast.AST]]:
    yield MODULE_SCOPE, tree
    for qualname, node, _ in _iter_functions(tree):
        yield qualname, node


def _arg_names(args: ast.arguments) -> list[str]:
    names = [a.arg for a in (*args.posonlyargs, *args.args)]
    if args.vararg:
        names.append("*" + args.vararg.arg)
    names += [a.arg for a in args.kwonlyargs]
    if args.kwarg:
        names.append("**" + args.kwarg.arg)
    return names


def _function_record(qualname: str, node: Any, is_method: bool) -> dict[str, Any]:
    docstring = ast.get_docstring(node)
    end = node.end_lineno or node.lineno
    return {
        "name": node.name,
        "qualname": qualname,
        "lineno": node.lineno,
        "end_lineno": end,
        "args": _arg_names(node.args),
        "lines": end - node.lineno + 1,
        "has_docstring": docstring is not None,
        "placeholder_docstring": docstring is not None and docstring.startswith("TODO: document "),
        "is_method": is_method,
    }


def _complexity(code: str, names: dict[int, str]) -> dict[str, int]:
    """Radon's cyclomatic complexity per function, keyed by the qualified names in ``names`` (by line)."""
    return {names.get(b.lineno, b.fullname): int(b.complexity) for b in _radon_functions(cc_visit(code))}


def _radon_functions(blocks: list[Any]) -> Iterator[Any]:
    """Flatten radon's blocks (classes hold methods and inner classes, functions hold closures)."""
    for block in blocks:
        if hasattr(block, "methods"):
            yield from _radon_functions([*block.methods, *block.inner_classes])
        else:
            yield block
            yield from _radon_functions(block.closures)


# -- helpers: issues ----------------------------------------------------------


def _issue(function: str, line: int | None, kind: str, message: str, severity: str) -> dict[str, Any]:
    return {"function": function, "line": line, "kind": kind, "message": message, "severity": severity}


def _function_issues(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Issues that follow from the function records and the complexity measurements."""
    complexity = state.get("complexity") or {}
    issues = []
    for f in state.get("functions") or []:
        name, line = f["qualname"], f["lineno"]
        cc = complexity.get(name, 0)
        if cc > MAX_COMPLEXITY:
            issues.append(
                _issue(name, line, "high_complexity", f"cyclomatic complexity {cc} > {MAX_COMPLEXITY}", "high")
            )
        if f["lines"] > MAX_LINES:
            issues.append(_issue(name, line, "long_function", f"{f['lines']} lines > {MAX_LINES}", "medium"))
        params = _counted_params(f)
        if params > MAX_PARAMETERS:
            issues.append(
                _issue(name, line, "too_many_parameters", f"{params} parameters > {MAX_PARAMETERS}", "medium")
            )
        if not f["has_docstring"]:
            issues.append(_issue(name, line, "missing_docstring", f"{f['name']} has no docstring", "low"))
    return issues


def _analysis_issues(state: dict[str, Any]) -> list[dict[str, Any]]:
    """One finding naming every analysis the code was nested too deeply for: the review is incomplete, and why.

    One issue, not one per analysis, so a single cause costs the score once.
    """
    errors = state.get("analysis_errors") or []
    if not errors:
        return []
    causes = "; ".join(f"{e['analysis']} raised {e['error']}" for e in errors)
    return [
        _issue(MODULE_SCOPE, None, "too_deep_to_analyse", f"source is too deeply nested to analyse: {causes}", "high")
    ]


def _counted_params(function: dict[str, Any]) -> int:
    """Parameter count, not counting a method's ``self``/``cls``."""
    args = function["args"]
    if function["is_method"] and args and args[0] in ("self", "cls"):
        return len(args) - 1
    return len(args)


def _code_issues(code: str) -> list[dict[str, Any]]:
    """Issues found by scanning each scope's own AST nodes.

    The code parsed in ``extract_functions``, but the parser's depth limit
    counts the caller's frames too: code at the very edge of it can fail here,
    and that is reported, not skipped.
    """
    tree, error = _parse(code)
    if tree is None:
        error = error or {}
        message = error.get("message", "the source could not be parsed again")
        return [_issue(MODULE_SCOPE, error.get("line"), "too_deep_to_analyse", message, "high")]
    issues = []
    for name, scope in _scopes(tree):
        issues += _node_issues(name, scope)
        if isinstance(scope, _FUNCS):
            issues += _mutable_default_issues(name, scope)
            issues += _nesting_issues(name, scope)
    return issues


def _node_issues(name: str, scope: ast.AST) -> list[dict[str, Any]]:
    issues = []
    for node in _own_nodes(scope):
        if isinstance(node, ast.ExceptHandler) and node.type is None:
            msg = "bare `except:` also catches KeyboardInterrupt and SystemExit"
            issues.append(_issue(name, node.lineno, "bare_except", msg, "high"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
            issues.append(_issue(name, node.lineno, "print_call", "print() call left in code", "low"))
    return issues


def _defaults(args: ast.arguments) -> Iterator[tuple[str, ast.expr]]:
    """Yield ``(parameter name, default expression)`` for every parameter with a default."""
    positional = [*args.posonlyargs, *args.args]
    # Both pairs have equal lengths by construction (defaults belong to the last positional parameters).
    yield from zip((a.arg for a in positional[len(positional) - len(args.defaults) :]), args.defaults, strict=True)
    for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        if default is not None:
            yield arg.arg, default


def _mutable_default_issues(name: str, func: Any) -> list[dict[str, Any]]:
    return [
        _issue(
            name,
            default.lineno,
            "mutable_default",
            f"parameter {arg!r} has a mutable default, shared by all calls",
            "high",
        )
        for arg, default in _defaults(func.args)
        if _is_mutable(default)
    ]


def _is_mutable(node: ast.expr) -> bool:
    """A list/dict/set literal or comprehension, or an empty ``list()``/``dict()``/``set()`` call."""
    return isinstance(node, _MUTABLE_LITERALS) or _is_empty_builtin_call(node)


def _is_empty_builtin_call(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _MUTABLE_BUILTINS
        and not node.args
        and not node.keywords
    )


def _nesting_issues(name: str, func: Any) -> list[dict[str, Any]]:
    depth, line = _nesting(func.body)
    if depth <= MAX_NESTING:
        return []
    return [_issue(name, line, "deep_nesting", f"blocks nested {depth} levels deep > {MAX_NESTING}", "medium")]


def _nesting(body: list[ast.stmt]) -> tuple[int, int | None]:
    """The deepest block level reached in a function ``body`` and the first line reaching it.

    An explicit stack, not recursion: an ``elif`` chain is a tree as deep as it
    is long, and a few hundred ``elif`` branches would exhaust the recursion limit.
    """
    deepest, line = 0, None
    stack = [(body, 0)]
    while stack:
        stmts, depth = stack.pop()
        for stmt in stmts:
            if isinstance(stmt, (*_FUNCS, ast.ClassDef)):
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


def _summary(state: dict[str, Any], issues: list[dict[str, Any]], score: int) -> str:
    functions = state.get("functions") or []
    text = f"{len(functions)} functions, {len(issues)} issues, quality {score}/100"
    if state.get("syntax_error"):
        text += f" ({_where('syntax error', state['syntax_error'].get('line'))}: {state['syntax_error']['message']})"
    placeholders = sum(1 for f in functions if f.get("placeholder_docstring"))
    if placeholders:
        text += f"; {placeholders} placeholder docstrings to fill in"
    passes = state.get("refactorings") or []
    if passes and passes[-1].get("error"):
        text += f"; the last refactor pass changed nothing: {passes[-1]['error']}"
    return text + f" (pass {int(state.get('iteration') or 0)})"


def _where(what: str, line: int | None) -> str:
    return what if line is None else f"{what} at line {line}"


# -- helpers: refactoring ----------------------------------------------------------


def _rewrite(code: str) -> tuple[str, dict[str, Any]]:
    """``code`` with the safe fixes applied, and the pass record: ``{"changes"}``, plus ``"error"`` if unwritable.

    ``ast.unparse`` (and ``ast.fix_missing_locations``, which it needs for the
    new nodes) recurse once per nesting level; on a tree too deep for them the
    fixes are dropped and the code kept, so the run still completes.
    """
    tree, _ = _parse(code)
    changes = [] if tree is None else _apply_fixes(tree)
    if tree is None or not changes:
        return code, {"changes": []}
    try:
        return ast.unparse(ast.fix_missing_locations(tree)) + "\n", {"changes": changes}
    except _TOO_DEEP as exc:
        return code, {"changes": [], "error": _too_deep_message("ast.unparse", exc)}


def _apply_fixes(tree: ast.Module) -> list[dict[str, Any]]:
    """Fix the tree in place and return the changes made (module scope first, then each function)."""
    changes = []
    for name, scope in _scopes(tree):
        changes += _fix_bare_excepts(name, scope)
        if isinstance(scope, _FUNCS):
            changes += _fix_function(name, scope)
    return changes


def _fix_bare_excepts(name: str, scope: ast.AST) -> list[dict[str, Any]]:
    changes = []
    for node in _own_nodes(scope):
        if isinstance(node, ast.ExceptHandler) and node.type is None:
            node.type = ast.Name(id="Exception", ctx=ast.Load())
            changes.append({"kind": "bare_except", "function": name, "line": node.lineno})
    return changes


def _fix_function(name: str, func: Any) -> list[dict[str, Any]]:
    """Replace safe mutable defaults with ``None`` guards and add a missing docstring."""
    changes = []
    has_docstring = ast.get_docstring(func) is not None
    guards, replaced = [], []
    for arg, default in _defaults(func.args):
        if _is_mutable(default) and _is_fixable(default):
            guards.append(_none_guard(arg, default))
            replaced.append(default)
            changes.append({"kind": "mutable_default", "function": name, "argument": arg})
    _replace_defaults(func.args, replaced)
    start = 1 if has_docstring else 0
    func.body[start:start] = guards
    if not has_docstring:
        func.body.insert(0, ast.Expr(value=ast.Constant(value=f"TODO: document {func.name}.")))
        changes.append({"kind": "missing_docstring", "function": name})
    return changes


def _is_fixable(node: ast.expr) -> bool:
    """True if evaluating the default at call time gives the same value as at definition time.

    That holds for literals of constants and for an empty ``list()``/``dict()``/
    ``set()``; a literal or comprehension that reads names could change meaning.
    """
    return _is_empty_builtin_call(node) or all(isinstance(n, _CONSTANT_PARTS) for n in ast.walk(node))


def _none_guard(arg: str, default: ast.expr) -> ast.If:
    """``if <arg> is None: <arg> = <default>``."""
    test = ast.Compare(left=ast.Name(id=arg, ctx=ast.Load()), ops=[ast.Is()], comparators=[ast.Constant(value=None)])
    assign = ast.Assign(targets=[ast.Name(id=arg, ctx=ast.Store())], value=default)
    return ast.If(test=test, body=[assign], orelse=[])


def _replace_defaults(args: ast.arguments, replaced: list[ast.expr]) -> None:
    """Swap each of ``replaced`` for ``None`` wherever it sits in ``args``.

    One pass over the defaults for all of them: replacing one at a time is
    quadratic, and a 2 MB source can hold a function with 100,000 defaults.
    """
    ids = {id(d) for d in replaced}
    for defaults in (args.defaults, args.kw_defaults):
        for i, value in enumerate(defaults):
            if id(value) in ids:
                defaults[i] = ast.Constant(value=None)
