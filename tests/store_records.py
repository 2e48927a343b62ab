"""Records as the run machine writes them, for the tests that drive a real Store directly."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from awe.store import RunRecord


def run_record(run_id: str, state: dict[str, Any], **changes: Any) -> RunRecord:
    """A running run of graph ``g`` with ``state``; ``changes`` sets other fields (``initial_state``, ...)."""
    record = RunRecord(
        run_id=run_id,
        graph_id="g",
        graph_version=1,
        status="running",
        state=state,
        step_count=0,
        current_node="a",
        plan={},
        error=None,
        options={},
        created_at="t0",
        updated_at="t0",
    )
    return replace(record, **changes)
