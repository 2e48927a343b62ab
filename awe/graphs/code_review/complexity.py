"""Cyclomatic complexity per function and maintainability index per file, with radon's letter ranks.

Radon recurses once per nesting level, so code nested a few hundred levels
deep (``return 1+1+...+1`` with a thousand terms) makes it raise; that is
recorded as an analysis error for the file, which becomes a finding, and the
measurement is left out.
"""

from __future__ import annotations

import functools
import textwrap
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from radon.complexity import cc_rank, cc_visit
from radon.metrics import mi_rank, mi_visit

from awe.graphs.code_review.extract import TOO_DEEP, too_deep_message

_T = TypeVar("_T")


def measure(path: str, code: str, functions: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"functions": [...], "file": {...}, "errors": [...]}`` for one parsed file.

    Per function: cyclomatic complexity and maintainability index, each with
    its rank; per file: the maintainability index and the average complexity,
    with theirs. Functions are matched to radon's blocks by line, so methods and closures
    carry the same qualified names as the function records.
    """
    names = {f["lineno"]: f["qualname"] for f in functions}
    ends = {f["lineno"]: f["end_lineno"] for f in functions}
    blocks, cc_error = attempt("radon cc_visit", lambda: list(_radon_functions(cc_visit(code))))
    index, mi_error = attempt("radon mi_visit", functools.partial(_index, code))
    lines = code.splitlines()
    per_function = []
    for b in blocks or []:
        segment = textwrap.dedent("\n".join(lines[b.lineno - 1 : ends.get(b.lineno, b.endline)]))
        function_index, _ = attempt("radon mi_visit", functools.partial(_index, segment))
        per_function.append(
            {
                "file": path,
                "function": names.get(b.lineno, b.fullname),
                "line": b.lineno,
                "complexity": int(b.complexity),
                "rank": cc_rank(b.complexity),
                **_maintainability(function_index),
            }
        )
    average = sum(f["complexity"] for f in per_function) / len(per_function) if per_function else None
    per_file = {
        **_maintainability(index),
        "average_complexity": None if average is None else round(average, 2),
        "average_complexity_rank": None if average is None else cc_rank(average),
    }
    errors = [dict(e, file=path) for e in (cc_error, mi_error) if e is not None]
    return {"functions": per_function, "file": per_file, "errors": errors}


def _index(code: str) -> float:
    return float(mi_visit(code, True))


def _maintainability(index: float | None) -> dict[str, Any]:
    """Radon's maintainability index (0-100, rounded) and its rank: A above 19, B above 9, else C."""
    if index is None:
        return {"maintainability": None, "maintainability_rank": None}
    return {"maintainability": round(index, 2), "maintainability_rank": mi_rank(index)}


def attempt(analysis: str, run: Callable[[], _T]) -> tuple[_T | None, dict[str, Any] | None]:
    """``run()``, or ``None`` and an error record when the code is nested too deeply for the analysis."""
    try:
        return run(), None
    except TOO_DEEP as exc:
        return None, {"analysis": analysis, "error": type(exc).__name__, "message": too_deep_message(analysis, exc)}


def _radon_functions(blocks: list[Any]) -> Iterator[Any]:
    """Flatten radon's blocks (classes hold methods and inner classes, functions hold closures)."""
    for block in blocks:
        if hasattr(block, "methods"):
            yield from _radon_functions([*block.methods, *block.inner_classes])
        else:
            yield block
            yield from _radon_functions(block.closures)
