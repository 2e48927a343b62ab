"""The built-in ``code_review_agent``: a Python code reviewer built on pyflakes, radon and libcst.

It reviews ``raw_code`` (one source) or ``files`` (``{path: source}``, a small
package) in a loop, detect -> refactor -> re-check, until the quality score
reaches ``quality_threshold`` (default 80), nothing more can be fixed, or
``max_iterations`` passes (default 3) have run; then an optional LLM step and
the report. Each module does one job:

* :mod:`~awe.graphs.code_review.sources`: the input, its limits and settings;
* :mod:`~awe.graphs.code_review.extract`: parsing and function records;
* :mod:`~awe.graphs.code_review.complexity`: radon's measurements;
* :mod:`~awe.graphs.code_review.findings`: pyflakes and awe's own checks;
* :mod:`~awe.graphs.code_review.refactor`: the libcst fixes;
* :mod:`~awe.graphs.code_review.verify`: the checks a fix must pass (parse, doctests);
* :mod:`~awe.graphs.code_review.score`: the quality score and the stop reason;
* :mod:`~awe.graphs.code_review.report`: the diff and the Markdown report;
* :mod:`~awe.graphs.code_review.llm`: the optional model review;
* :mod:`~awe.graphs.code_review.nodes` and :mod:`~awe.graphs.code_review.graph`: the steps and the graph.

The final state (all JSON): ``sources`` (the refactored files, by path),
``refactored_code`` (for ``raw_code``), ``diff``, ``report`` (Markdown),
``findings`` and ``findings_before``, ``quality_score``, ``scores`` (one
``{"iteration", "quality_score", "findings"}`` per pass), ``stop_reason``,
``refactorings`` (the fixes of each pass, those declined and why, the doctest
checks), ``functions``, ``complexity``, ``maintainability``, ``syntax_errors``,
``llm_review``.
"""

from awe.graphs.code_review.graph import NODE_TIMEOUT_SECONDS, code_review_agent
from awe.graphs.code_review.nodes import (
    check_complexity,
    detect_issues,
    extract_functions,
    llm_review,
    refactor,
    review_gate,
    write_report,
)
from awe.graphs.code_review.score import quality_score

__all__ = [
    "NODE_TIMEOUT_SECONDS",
    "check_complexity",
    "code_review_agent",
    "detect_issues",
    "extract_functions",
    "llm_review",
    "quality_score",
    "refactor",
    "review_gate",
    "write_report",
]
