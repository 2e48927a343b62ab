"""Cyclomatic complexity per function and maintainability index per file, with radon's letter ranks.

Radon recurses once per nesting level, so code nested a few hundred levels
deep (``return 1+1+...+1`` with a thousand terms) makes it raise; that is
recorded as an analysis error for the file, which becomes a finding, and the
measurement is left out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from radon.complexity import cc_rank, cc_visit
from radon.metrics import mi_rank, mi_visit

from awe.graphs.code_review.extract import TOO_DEEP, too_deep_message

_T = TypeVar("_T")


def measure(path: str, code: str, functions: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"functions": [...], "file": {...}, "errors": [...]}`` for one parsed file.

    Functions are matched to radon's blocks by line, so methods and closures
    carry the same qualified names as the function records.
    """
    names = {f["lineno"]: f["qualname"] for f in functions}
    blocks, cc_error = attempt("radon cc_visit", lambda: list(_radon_functions(cc_visit(code))))
    index, mi_error = attempt("radon mi_visit", lambda: float(mi_visit(code, True)))
    per_function = [
        {
            "file": path,
            "function": names.get(b.lineno, b.fullname),
            "line": b.lineno,
            "complexity": int(b.complexity),
            "rank": cc_rank(b.complexity),
        }
        for b in blocks or []
    ]
    per_file = {"maintainability": None if index is None else round(index, 2), "rank": None}
    if index is not None:
        per_file["rank"] = mi_rank(index)
    errors = [dict(e, file=path) for e in (cc_error, mi_error) if e is not None]
    return {"functions": per_function, "file": per_file, "errors": errors}


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
