"""Run the Code Review Agent's nodes in this process, in the order the graph runs them, for fast tests."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
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
            state.update(_pure(step, state))
        if nodes.review_gate(state) == "done":
            break
        state.update(_pure(nodes.refactor, state))
    state.update(_json(asyncio.run(nodes.llm_review(copy.deepcopy(state), context(attempt)))))
    state.update(_pure(nodes.write_report, state))
    return state


def _pure(step: Callable[[dict[str, Any]], dict[str, Any]], state: dict[str, Any]) -> dict[str, Any]:
    """``step(state)``, checking that the node left its input alone (workers may share it) and returned JSON."""
    before = copy.deepcopy(state)
    update = step(state)
    assert state == before, f"{step.__name__} changed its input state"
    return _json(update)


def context(attempt: int = 1) -> Context:
    log = structlog.get_logger("test")
    return Context("r", "code_review_agent", "llm_review", step=1, attempt=attempt, worker_id="w", log=log)


def _json(update: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(update))  # fails on anything the engine could not store
