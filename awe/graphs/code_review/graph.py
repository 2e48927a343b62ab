"""The ``code_review_agent`` graph::

extract_functions -> check_complexity -> detect_issues --stop_reason?--> llm_review -> write_report -> END
       ^                                                      |
       +------------------------- refactor <------------------+
"""

from __future__ import annotations

from awe.graph import END, Graph
from awe.graphs.code_review import llm
from awe.graphs.code_review.nodes import (
    check_complexity,
    detect_issues,
    extract_functions,
    llm_review,
    refactor,
    review_gate,
    write_report,
)

NODE_TIMEOUT_SECONDS = 60.0
"""How long each analysis node may run before the engine fails the run with ``NodeTimeout``.

They are deterministic CPU work, so no retry is configured; the timeout is the
backstop for an input nobody foresaw (the size limits of
:mod:`awe.graphs.code_review.sources` keep every pass to seconds). A sync node
past its timeout is abandoned, not stopped: this bounds the run, not the CPU
its thread spends."""

code_review_agent = Graph("code_review_agent")
code_review_agent.add_node("extract_functions", extract_functions, timeout=NODE_TIMEOUT_SECONDS)
code_review_agent.add_node("check_complexity", check_complexity, timeout=NODE_TIMEOUT_SECONDS)
code_review_agent.add_node("detect_issues", detect_issues, timeout=NODE_TIMEOUT_SECONDS)
code_review_agent.add_node("refactor", refactor, timeout=NODE_TIMEOUT_SECONDS)
code_review_agent.add_node("llm_review", llm_review, retry=llm.RETRY, timeout=llm.NODE_TIMEOUT_SECONDS)
code_review_agent.add_node("write_report", write_report, timeout=NODE_TIMEOUT_SECONDS)
code_review_agent.add_edge("extract_functions", "check_complexity")
code_review_agent.add_edge("check_complexity", "detect_issues")
code_review_agent.add_conditional_edge("detect_issues", review_gate, {"done": "llm_review", "refactor": "refactor"})
code_review_agent.add_edge("refactor", "extract_functions")
code_review_agent.add_edge("llm_review", "write_report")
code_review_agent.add_edge("write_report", END)
code_review_agent.set_entry_point("extract_functions")
