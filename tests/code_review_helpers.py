"""Run the Code Review Agent's nodes in this process, in the order the graph runs them, for fast tests."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import structlog

from awe.graph.context import Context
from awe.graphs.code_review import nodes

SAMPLES = Path(__file__).parent / "code_review_samples"
MESSY = (SAMPLES / "messy_orders.py").read_text()


def review(state: dict[str, Any], *, attempt: int = 1) -> dict[str, Any]:
    """The final state of a review of ``state``, as the graph would reach it; each node's output must be JSON."""
    state = copy.deepcopy(state)
    for _ in range(20):
        for step in (nodes.extract_functions, nodes.check_complexity, nodes.detect_issues):
            state.update(_json(step(copy.deepcopy(state))))
        if nodes.review_gate(state) == "done":
            break
        state.update(_json(nodes.refactor(copy.deepcopy(state))))
    state.update(_json(asyncio.run(nodes.llm_review(copy.deepcopy(state), context(attempt)))))
    state.update(_json(nodes.write_report(copy.deepcopy(state))))
    return state


def context(attempt: int = 1) -> Context:
    log = structlog.get_logger("test")
    return Context("r", "code_review_agent", "llm_review", step=1, attempt=attempt, worker_id="w", log=log)


def _json(update: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(update))  # fails on anything the engine could not store
