"""Large values go to the values file beside the database, and come back whole, across restarts.

These run a real Store on a real SQLite file in the test's event loop.
"""

from __future__ import annotations

import asyncio
import resource
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from store_records import open_store, run_record

from awe.store import StepRecord
from awe.store.values import LARGE_CHARACTERS, ValueFileError

BIG = "b" * (2 * LARGE_CHARACTERS)
SMALL = "s" * (LARGE_CHARACTERS // 2)


def _step(run_id: str, delta: dict[str, Any]) -> StepRecord:
    return StepRecord(
        run_id=run_id,
        step=1,
        node="a",
        attempt=1,
        status="completed",
        worker_id="w",
        started_at="t0",
        finished_at="t1",
        duration_ms=1.0,
        delta=delta,
    )


def _types(path: Path, sql: str) -> list[str]:
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute(sql)]


async def test_large_values_are_written_beside_the_database_and_read_back_whole(tmp_path: Path) -> None:
    path = tmp_path / "awe.db"
    async with open_store(path) as store:
        initial = {"document": BIG, "note": SMALL, "n": 0}
        await store.write([run_record("r", initial, initial_state=initial)])
        later = {"document": BIG, "note": SMALL, "n": 1, "answer": "é" * LARGE_CHARACTERS}  # 2 bytes a character
        changed = frozenset({"n", "answer"})
        await store.write([run_record("r", later, changed_keys=changed), _step("r", {"answer": later["answer"]})])

        assert (stored := await store.get_run("r")) is not None and stored.state == later
        assert await store.initial_state("r") == initial
        assert [s.delta for s in await store.steps("r")] == [{"answer": later["answer"]}]
    # The rows hold references (BLOBs), the values file the bytes: the megabytes never went through SQLite.
    assert _types(path, "SELECT typeof(initial_state) FROM run_inputs") == ["blob"]
    assert _types(path, "SELECT typeof(value) FROM run_values WHERE key = 'answer'") == ["blob"]
    assert _types(path, "SELECT typeof(value) FROM run_values WHERE key = 'n'") == ["text"]
    assert _types(path, "SELECT typeof(delta) FROM steps") == ["blob"]
    values = tmp_path / "awe.db-values"
    assert values.stat().st_size >= len(BIG) + len(SMALL) + 3 * LARGE_CHARACTERS  # initial, answer, delta

    async with open_store(path) as store:  # a restart reads them from the file, and appends after what is there
        size = values.stat().st_size
        with values.open("ab") as file:  # what a process killed between writing a value and its commit leaves
            file.write(b"x" * 1000)
        await store.write([run_record("s", {"document": BIG + "!"}, initial_state={"document": BIG + "!"})])
        assert values.stat().st_size >= size + 1000 + len(BIG)
        assert (stored := await store.get_run("r")) is not None and stored.state == later
        assert (stored := await store.get_run("s")) is not None and stored.state == {"document": BIG + "!"}


async def test_a_values_file_that_cannot_grow_holds_the_commit_back_and_loses_nothing(tmp_path: Path) -> None:
    """A full disk, played by a file size limit: the commit waits for room, as for SQLite's own files."""
    async with open_store(tmp_path / "awe.db") as store:
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        ignored = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        state = {"document": BIG * 10}
        try:
            await store.write([run_record("before", {"n": 1})])  # the database's own files are there already
            resource.setrlimit(resource.RLIMIT_FSIZE, (len(BIG), hard))
            store.submit(
                [run_record("r", state, initial_state=state)],
                on_commit=lambda: outcome.set_result("committed"),
                on_error=lambda error: outcome.set_result(repr(error)),
            )
            await asyncio.sleep(0.5)
            assert not outcome.done()  # waiting for room, not refused
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            signal.signal(signal.SIGXFSZ, ignored)
        assert await asyncio.wait_for(outcome, timeout=10) == "committed"
        assert (stored := await store.get_run("r")) is not None and stored.state == state


async def test_a_lost_or_damaged_values_file_is_named_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "awe.db"
    async with open_store(path) as store:
        await store.write([run_record("r", {"document": BIG}, initial_state={"document": BIG})])
        values = tmp_path / "awe.db-values"
        with values.open("r+b") as file:
            file.seek(len(BIG) // 2)
            file.write(b"X")
        with pytest.raises(ValueFileError, match=r"awe\.db-values does not hold .* restore it from the backup"):
            await store.get_run("r")
    values.unlink()
    async with open_store(path) as store:
        with pytest.raises(ValueFileError, match=r"awe\.db-values cannot be read .* restore it with the database"):
            await store.get_run("r")


async def test_a_whole_state_written_over_a_large_initial_state_drops_the_keys_it_lacks(tmp_path: Path) -> None:
    """SQLite's JSON functions cannot see into the values file; the store reads the initial state's keys itself."""
    async with open_store(tmp_path / "awe.db") as store:
        initial = {"document": BIG, "gone": 1}
        await store.write([run_record("r", initial, initial_state=initial)])
        await store.write([run_record("r", {"n": 2})])  # the whole state, no initial state, no changed keys
        assert (stored := await store.get_run("r")) is not None and stored.state == {"n": 2}
        assert await store.initial_state("r") == initial
