"""The quality score, 0 to 100, and the reason the review loop stops.

::

    score = 100 - sum(WEIGHTS[f.severity] for f in findings) / max(1, lines / 100)
                - max(0, MI_FLOOR - maintainability)

clamped to 0-100 and rounded. Findings cost high 10, medium 5, low 2 and info 0
points per 100 lines of analysed source (a 300-line file with three findings
scores like a 100-line file with one); ``maintainability`` is radon's
maintainability index of the files, weighted by their lines, and costs a point
per point below :data:`MI_FLOOR` (radon's rank A starts at 20). Complexity
counts through the ``high-complexity`` findings and the index. A file that could
not be read at all (a syntax error, too large) makes the score 0: the score is
about the code as submitted.
"""

from __future__ import annotations

from typing import Any

WEIGHTS = {"high": 10, "medium": 5, "low": 2, "info": 0}
MI_FLOOR = 20.0
UNREADABLE = frozenset({"syntax-error", "source-too-large"})

THRESHOLD_REACHED = "threshold_reached"
NOTHING_TO_FIX = "nothing_to_fix"
MAX_ITERATIONS = "max_iterations"


def quality_score(findings: list[dict[str, Any]], maintainability: dict[str, Any], lines: dict[str, int]) -> int:
    """The score of a review pass; ``maintainability`` and ``lines`` are keyed by file path."""
    if any(f["rule"] in UNREADABLE for f in findings):
        return 0
    units = max(1.0, sum(lines.values()) / 100)
    penalty = sum(WEIGHTS.get(f["severity"], 0) for f in findings) / units
    measured = [(m["maintainability"], lines.get(path, 0)) for path, m in maintainability.items()]
    measured = [(index, n) for index, n in measured if index is not None and n > 0]
    if measured:
        index = sum(i * n for i, n in measured) / sum(n for _, n in measured)
        penalty += max(0.0, MI_FLOOR - index)
    return round(min(100.0, max(0.0, 100.0 - penalty)))


def stop_reason(
    score: int, threshold: float, findings: list[dict[str, Any]], iteration: int, max_iterations: float, *, stuck: bool
) -> str | None:
    """Why the loop stops after this pass, or ``None`` to refactor again.

    In this order: the score reached the threshold; nothing left is fixable (or
    the last refactor pass changed nothing, ``stuck``); the passes are used up.
    """
    if score >= threshold:
        return THRESHOLD_REACHED
    if stuck or not any(f["fixable"] for f in findings):
        return NOTHING_TO_FIX
    if iteration >= max_iterations:
        return MAX_ITERATIONS
    return None
