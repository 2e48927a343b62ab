"""The store's writer: group commits in submission order, and a refused record stalls no one.

These run a real Store on a real SQLite file in the test's event loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from store_records import open_store, run_record

from awe.store import EventRecord, checkpoints
from awe.store.sqlite import MAX_BATCH_INPUT_CHARACTERS, MAY_WAIT_SECONDS, Store
from awe.store.values import LARGE_CHARACTERS


def _too_deep_to_write() -> list[Any]:
    """A value no JSON encoder can write (it overflows the stack): it stands for any record the database refuses."""
    value: list[Any] = []
    for _ in range(100_000):
        value = [value]
    return value


async def test_a_refused_record_fails_alone_and_the_rest_of_its_batch_commits(tmp_path: Path) -> None:
    async with open_store(tmp_path / "awe.db") as store:
        outcomes: list[tuple[str, str]] = []
        for run_id, state in [("a", {"n": 1}), ("bad", {"deep": _too_deep_to_write()}), ("c", {"n": 3})]:
            store.submit(  # new runs, as the engine writes them: the state is also the initial state
                [
                    replace(run_record(run_id, state), initial_state=state),
                    EventRecord(run_id=run_id, seq=1, time="t0", event="run_queued"),
                ],
                on_commit=lambda r=run_id: outcomes.append((r, "committed")),
                on_error=lambda error, r=run_id: outcomes.append((r, type(error).__name__)),
            )
        await asyncio.wait_for(store.write([]), timeout=10)  # once everything submitted before it is handled
        assert outcomes == [("a", "committed"), ("bad", "RecursionError"), ("c", "committed")]
        assert (await store.get_run("a")) is not None and (await store.get_run("c")) is not None
        assert await store.get_run("bad") is None
        assert await store.events_after("bad", 0) == []  # nothing half-written
        assert [e.run_id for e in await store.events_after("c", 0)] == ["c"]

        await store.write([run_record("later", {"n": 4})])  # the writer is still there
        assert await store.get_run("later") is not None


async def test_a_locked_database_is_waited_for_and_nothing_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "awe.db"
    async with open_store(path) as store:
        blocker = sqlite3.connect(path, timeout=0)
        try:
            blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock
            committed = asyncio.get_running_loop().create_future()
            store.submit([run_record("patient", {"n": 1})], on_commit=lambda: committed.set_result(True))
            await asyncio.sleep(0.3)
            assert not committed.done()  # still waiting, not dropped
            blocker.rollback()
            assert await asyncio.wait_for(committed, timeout=10)
            assert await store.get_run("patient") is not None
        finally:
            blocker.close()


async def test_a_read_cancelled_midway_hides_no_later_commit_from_the_next_read(tmp_path: Path) -> None:
    # A WebSocket whose client leaves cancels its handler's reads; the next request must still see every commit.
    async with open_store(tmp_path / "awe.db") as store:
        await store.write(
            [run_record(f"old-{n}", {"n": n}) for n in range(3)]
        )  # rows for the cancelled read to stop at
        for attempt in range(5):
            reading = asyncio.ensure_future(store.list_runs(limit=1000))
            await asyncio.sleep(0)  # the query is on its way to the reader's thread
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)
            await store.write([run_record(f"new-{attempt}", {"n": attempt})])
            assert await store.get_run(f"new-{attempt}") is not None, attempt


async def test_full_durability_sets_sqlite_to_sync_every_commit(tmp_path: Path) -> None:
    for setting, expected in (("NORMAL", 1), ("FULL", 2)):
        async with open_store(tmp_path / f"{setting}.db", synchronous=setting) as store:
            assert store._writer is not None
            async with store._writer.execute("PRAGMA synchronous") as cursor:
                assert (await cursor.fetchone()) == (expected,)


async def test_a_state_is_its_initial_state_with_the_changes_laid_over_it(tmp_path: Path) -> None:
    """A run's first record writes its state once (as the initial state); later ones only the keys they name."""
    async with open_store(tmp_path / "awe.db") as store:
        initial = {"big": "x" * 1000, "n": 0, "gone": True}
        first = replace(run_record("r", initial), initial_state=initial)
        await store.write([first])
        assert store._writer is not None
        async with store._writer.execute("SELECT count(*) FROM run_values") as cursor:
            assert await cursor.fetchone() == (0,)  # nothing differs from the initial state yet
        later = {"big": initial["big"], "n": 1, "new": [1]}  # 'gone' removed, 'new' added
        step = replace(first, state=later, initial_state=None, changed_keys=frozenset({"n", "gone", "new"}))
        await store.write([step])
        assert (stored := await store.get_run("r")) is not None and stored.state == later
        # A record of the whole state with no initial state (none the engine makes) still reads back as given.
        await store.write([replace(first, state={"n": 2}, initial_state=None, changed_keys=None)])
        assert (stored := await store.get_run("r")) is not None and stored.state == {"n": 2}
        assert await store.initial_state("r") == initial  # kept for history and forks


async def test_the_write_ahead_log_is_copied_into_the_database_beside_the_writer(tmp_path: Path) -> None:
    """The writer never checkpoints (its commits do not wait for one); the checkpointer does, so the log starts over."""
    path = tmp_path / "awe.db"
    async with open_store(path) as store:
        assert store._writer is not None
        async with store._writer.execute("PRAGMA wal_autocheckpoint") as cursor:
            assert await cursor.fetchone() == (0,)
        text = "x" * (LARGE_CHARACTERS - 100)  # kept in the database: a larger one goes to the values file
        for n in range(3):  # each past the characters that make a checkpoint due
            done = store._checkpointer.checkpoints
            await store.write(
                [replace(run_record(f"big-{n}-{i}", {}), initial_state={"text": text}) for i in range(65)]
            )
            for _ in range(200):
                if store._checkpointer.checkpoints > done:
                    break
                await asyncio.sleep(0.05)
            assert store._checkpointer.checkpoints > done, n
        await store.write([run_record("small", {"n": 1})])
        wal = path.with_name("awe.db-wal").stat().st_size
        assert wal < 6_000_000, wal  # the log started over after each checkpoint; without them it would hold 12 MB


async def test_a_burst_of_large_new_runs_is_committed_a_few_runs_at_a_time(tmp_path: Path) -> None:
    """The first runs of a burst are durable (and can start) before the whole burst is written."""
    async with open_store(tmp_path / "awe.db") as store:
        commits: list[tuple[int, int]] = []
        store.observe_commits(lambda seconds, submissions, characters: commits.append((submissions, characters)))
        text = "x" * (MAX_BATCH_INPUT_CHARACTERS // 2)
        for n in range(5):  # all queued before the writer runs: without a bound, one commit takes them all
            state = {"text": text, "n": n}
            store.submit([replace(run_record(f"big-{n}", state), initial_state=state)])
        await asyncio.wait_for(store.write([]), timeout=10)
        assert [submissions for submissions, _ in commits] == [2, 2, 2]  # the last with the empty write
        assert all(characters <= MAX_BATCH_INPUT_CHARACTERS + 100 for _, characters in commits)
        for n in range(5):
            assert (stored := await store.get_run(f"big-{n}")) is not None
            assert stored.state == {"text": text, "n": n}


async def test_reports_that_may_wait_ride_with_the_next_commit_in_the_order_submitted(tmp_path: Path) -> None:
    """A node's start (``may_wait``) and its quick result make one commit, the start first; a start
    with nothing after it is still written, within ``MAY_WAIT_SECONDS``."""
    async with open_store(tmp_path / "awe.db") as store:
        commits: list[int] = []
        store.observe_commits(lambda seconds, submissions, characters: commits.append(submissions))
        done: list[str] = []
        await store.write([run_record("r", {"n": 0})])
        commits.clear()
        store.submit(
            [EventRecord(run_id="r", seq=1, time="t1", event="node_started")],
            lambda: done.append("start"),
            may_wait=True,
        )
        await asyncio.sleep(0)  # the writer gets a turn: nothing is queued for it
        assert commits == [] and store.backlog == 1
        store.submit([EventRecord(run_id="r", seq=2, time="t2", event="node_completed")], lambda: done.append("result"))
        await asyncio.wait_for(store.write([]), timeout=10)
        assert commits[0] >= 2 and done == ["start", "result"]  # one commit, in the order submitted

        commits.clear()
        store.submit(
            [EventRecord(run_id="r", seq=3, time="t3", event="node_started")],
            lambda: done.append("alone"),
            may_wait=True,
        )
        async with asyncio.timeout(10):
            while "alone" not in done:
                await asyncio.sleep(MAY_WAIT_SECONDS / 4)
        assert commits == [1]
        assert [e.event for e in await store.events_after("r", 0)] == ["node_started", "node_completed", "node_started"]


async def test_closing_the_store_writes_the_reports_it_holds(tmp_path: Path) -> None:
    path = str(tmp_path / "awe.db")
    store = Store(path)
    await store.open()
    await store.write([run_record("r", {"n": 0})])
    store.submit([EventRecord(run_id="r", seq=1, time="t1", event="node_started")], may_wait=True)
    await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT event FROM events WHERE run_id = 'r'").fetchall() == [("node_started",)]


async def test_under_steady_commits_the_log_is_restarted_and_its_file_cut_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Commits that never pause leave a passive checkpoint no moment to let the log start over: without
    a restart the log's file grows by everything written (here some 55 MB), for as long as the load lasts."""
    monkeypatch.setattr(checkpoints, "RESTART_BYTES", 1024 * 1024)
    path = tmp_path / "awe.db"
    text = "x" * 10_000  # eight runs a commit: too large to commit on the event loop, so commits run on the
    # writer's thread, beside the checkpointer's, back to back
    async with open_store(path) as store:
        largest_log = 0
        for commit in range(400):
            await store.write([run_record(f"r{commit}-{i}", {"text": text, "n": i}) for i in range(8)])
            largest_log = max(largest_log, path.with_name("awe.db-wal").stat().st_size)
        assert largest_log < 16 * 1024 * 1024, largest_log  # a few checkpoints' worth, not the 55 MB written
        assert store._checkpointer.restarts >= 1
        assert (stored := await store.get_run("r399-7")) is not None and stored.state == {"text": text, "n": 7}
        assert (stored := await store.get_run("r0-0")) is not None and stored.state == {"text": text, "n": 0}


async def test_a_reader_holding_the_log_puts_its_restart_off_without_refusing_a_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart waits a moment for readers, then gives up and lets the log grow a while before it tries again."""
    monkeypatch.setattr(checkpoints, "RESTART_BYTES", 1024 * 1024)
    monkeypatch.setattr(checkpoints, "RESTART_RETRY_SECONDS", 0.25)
    path = tmp_path / "awe.db"
    text = "x" * 10_000
    async with open_store(path) as store:
        await store.write([run_record("first", {"n": 0})])
        reader = sqlite3.connect(path)
        try:
            reader.execute("BEGIN")
            assert reader.execute("SELECT count(*) FROM runs").fetchone() == (1,)  # its snapshot holds the log
            started = time.monotonic()
            for commit in range(150):
                await store.write([run_record(f"r{commit}-{i}", {"text": text, "n": i}) for i in range(8)])
            held = time.monotonic() - started
            assert store._checkpointer.restarts == 0
            # Each try holds commits back while it waits for the reader: one try per retry period, not one a commit.
            refused = store._checkpointer.restarts_refused
            assert 1 <= refused <= held / 0.25 + 1, (refused, held)
            assert reader.execute("SELECT count(*) FROM runs").fetchone() == (1,)  # still its own snapshot
        finally:
            reader.close()
        for commit in range(150, 2000):  # until the next try, which now succeeds
            await store.write([run_record(f"r{commit}-{i}", {"text": text, "n": i}) for i in range(8)])
            if store._checkpointer.restarts:
                break
        assert store._checkpointer.restarts == 1
        for run_id in ("first", "r0-0", "r149-7", f"r{commit}-7"):
            assert await store.get_run(run_id) is not None, run_id
