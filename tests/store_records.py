"""Records as the run machine writes them, and a Store to write them to, for the tests that drive one directly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from awe.store import RunRecord
from awe.store.sqlite import Store


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


@asynccontextmanager
async def open_store(path: Path | str, *, synchronous: str = "NORMAL") -> AsyncIterator[Store]:
    """A real Store on the SQLite file at ``path``, open for the block and closed after it."""
    store = Store(str(path), synchronous=synchronous)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
