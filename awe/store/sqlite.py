"""The coordinator's SQLite store: one writer with group commit, one reader, one checkpointer.

Every durable fact goes through :meth:`Store.submit`. A single writer task
takes everything queued since its last commit, writes it in one transaction
and only then runs each submission's ``on_commit`` callback, in submission
order. That callback is where the coordinator dispatches the next job and
publishes events, so nothing is acted on or shown before it is durable, and
one fsync serves every run that advanced in the meantime.

A small commit is made on the event loop's thread, a large one on the writer
connection's own thread (see ``Store._may_commit_inline``); copying the
write-ahead log into the database file is left to a third connection
(:mod:`awe.store.checkpoints`), so that no commit waits for it. A JSON value
of 64 KiB or more is not written into SQLite's pages at all but beside the
database, in its values file (:mod:`awe.store.values`).

Reads use a second connection: in WAL mode they see the last commit and never
wait for the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import aiosqlite
import orjson
import structlog

from awe import jsondata
from awe.store import schema
from awe.store.checkpoints import Checkpointer, restart_log
from awe.store.records import (
    EventRecord,
    GraphDeletion,
    GraphRecord,
    Record,
    RunRecord,
    StepRecord,
    WorkerPresence,
    utcnow,
)
from awe.store.values import Reference, ValueFile, values_path
from awe.tasks import BackgroundTasks

log = structlog.get_logger("awe.store")

MAX_BATCH = 2000
"""Submissions per transaction: bounds the latency a huge backlog adds to one commit."""

MAX_BATCH_INPUT_CHARACTERS = 4 * 1024 * 1024
"""New runs' initial states per transaction, in JSON characters. A burst of runs of a megabyte
each is then committed a few runs at a time, and the first of them start while the rest are
written, rather than all waiting for one commit of the whole burst (some 2.5 ms per MB)."""

MAY_WAIT_SECONDS = 0.01
"""How long records submitted with ``may_wait`` are held for another commit to ride with. A node's
start is then written with its result when the node takes less, and 10 ms late when it takes more."""

WRITER_CACHE_KIB = 16 * 1024
"""The writer's page cache (SQLite's default is 2 MiB). Hundreds of runs in flight touch pages all over
the runs, steps and events tables; with 2 MiB the writer read 27 KB a step back from the file (5.6 reads),
with 16 MiB 1.9 KB, and its thread's CPU per step fell from 62-66 to 55-58 µs (``chain10``, async nodes)."""

INLINE_ROWS = 64
INLINE_CHARACTERS = 64 * 1024
"""The largest commit made on the event loop's thread (see ``Store._may_commit_inline``)."""


def _dumps(value: Any) -> str:
    return jsondata.to_json(value, default=str)


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # what the fallback of _dumps wrote
        return json.loads(text)


OnCommit = Callable[[], None]
OnError = Callable[[BaseException], None]


@dataclass
class _Submission:
    records: list[Record]
    on_commit: OnCommit | None
    on_error: OnError | None
    inputs: dict[str, str] | None = None
    """The initial states of the new runs among ``records``, as JSON, by run id."""

    def input_characters(self) -> int:
        """How much initial state this submission writes: JSON written once, here, and reused by the commit."""
        if self.inputs is None:
            try:
                self.inputs = {
                    record.run_id: _dumps(record.initial_state)
                    for record in self.records
                    if isinstance(record, RunRecord) and record.initial_state is not None
                }
            except Exception:  # the commit meets the same value and refuses this submission alone
                return 0
        return sum(map(len, self.inputs.values()))


@dataclass
class _Rows:
    """A batch's records as table rows, grouped by statement."""

    runs: dict[str, RunRecord] = field(default_factory=dict)
    steps: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    graphs: list[tuple[Any, ...]] = field(default_factory=list)
    deletions: list[tuple[Any, ...]] = field(default_factory=list)
    workers: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    """Initial states already written as JSON (see ``_Submission.input_characters``), by run id."""
    state_characters: int = 0
    """The length of the state JSON that :meth:`statements` wrote: initial states and changed keys."""
    logged_characters: int = 0
    """How much of that JSON went into the database's log, not the values file: what a checkpoint copies."""
    whole: list[str] = field(default_factory=list)
    """Runs whose whole state is written without their initial state (see ``Store._removed_input_keys``)."""

    @classmethod
    def of(cls, batch: list[_Submission]) -> _Rows:
        rows = cls()
        for submission in batch:
            for record in submission.records:
                rows.add(record)
            if submission.inputs:
                rows.inputs.update(submission.inputs)
        return rows

    def add(self, record: Record) -> None:
        if isinstance(record, RunRecord):
            self.runs[record.run_id] = _merged(self.runs.get(record.run_id), record)
        elif isinstance(record, StepRecord):
            self.steps.append(_step_row(record))
        elif isinstance(record, EventRecord):
            self.events.append(_event_row(record))
        elif isinstance(record, GraphRecord):
            self.graphs.append(_graph_row(record))
        elif isinstance(record, GraphDeletion):
            self.deletions.append((record.deleted_at, record.graph_id))
        elif isinstance(record, WorkerPresence):
            self.workers[record.worker_id] = (record.worker_id, record.joined_at, record.left_at)

    def statements(self, value_file: ValueFile) -> list[tuple[str, list[tuple[Any, ...]]]]:
        """Each statement with its rows, graphs last (a deletion applies to versions written before it).

        A large state value, initial state or step delta is handed to ``value_file``, and its row
        holds the reference that :meth:`ValueFile.stored` returns.
        """
        inputs, cleared, values, whole = [], [], [], []
        for run in self.runs.values():
            if run.initial_state is not None:
                text = self.inputs.get(run.run_id)
                text = text if text is not None else _dumps(run.initial_state)
                inputs.append((run.run_id, self._stored(value_file, text)))
            if run.changed_keys is None:
                cleared.append((run.run_id,))
                if run.initial_state is None:
                    whole.append((run.run_id,))
                    self.whole.append(run.run_id)
            for key in _keys_to_write(run):
                value = self._stored(value_file, _dumps(run.state[key])) if key in run.state else None
                values.append((run.run_id, key, value))
        steps = [_with_delta(row, value_file.stored(row[7])) for row in self.steps]
        groups = [
            (schema.UPSERT_RUN, [_run_row(r) for r in self.runs.values()]),
            (schema.INSERT_RUN_INPUT, inputs),
            (schema.CLEAR_RUN_VALUES, cleared),
            (schema.UPSERT_RUN_VALUE, values),
            (schema.REMOVE_INPUT_KEYS, whole),
            (schema.INSERT_STEP, steps),
            (schema.INSERT_EVENT, self.events),
            (schema.INSERT_GRAPH, self.graphs),
            (schema.DELETE_GRAPH, self.deletions),
            (schema.UPSERT_WORKER, list(self.workers.values())),
        ]
        return [(statement, params) for statement, params in groups if params]

    def _stored(self, value_file: ValueFile, text: str) -> str | Reference:
        """What a row holds for ``text``: the text, or its reference in the values file; counted either way."""
        stored = value_file.stored(text)
        self.state_characters += len(text)
        if stored is text:
            self.logged_characters += len(text)
        return stored


def _with_delta(row: tuple[Any, ...], delta: str | Reference) -> tuple[Any, ...]:
    """A step's row with its delta as stored: the same row when the delta stays in the database."""
    return row if delta is row[7] else (*row[:7], delta, *row[8:])


def _state(
    initial: dict[str, Any], changes: list[tuple[str, str | bytes | None]], read: Callable[[str | bytes], Any]
) -> dict[str, Any]:
    """A run's state: its initial state with each changed key's stored value, or without it (NULL)."""
    state = dict(initial)
    for key, value in changes:
        if value is None:
            state.pop(key, None)
        else:
            state[key] = read(value)
    return state


def _keys_to_write(run: RunRecord) -> Iterable[str]:
    """The state keys whose ``run_values`` rows this record changes (a key not in the state: its removal).

    A run's stored state is its initial state with its ``run_values`` laid over it, so a record that
    stands for the whole state (a new run's) writes only what differs from the initial state it
    carries: for a new run, nothing. Values are compared by identity: the run machine makes a new
    state dict at each step but keeps the values it did not change.
    """
    if run.changed_keys is not None:
        return run.changed_keys
    base = run.initial_state
    if base is None:  # not one the run machine makes; REMOVE_INPUT_KEYS hides what the stored initial has more
        return run.state.keys()
    changed = [key for key, value in run.state.items() if key not in base or base[key] is not value]
    return changed + [key for key in base if key not in run.state]


def _merged(earlier: RunRecord | None, record: RunRecord) -> RunRecord:
    """One batch writes only a run's newest record, with what every record of the run in it changed."""
    if earlier is None:
        return record
    changed = None
    if earlier.changed_keys is not None and record.changed_keys is not None:
        changed = earlier.changed_keys | record.changed_keys
    initial = record.initial_state if record.initial_state is not None else earlier.initial_state
    return replace(record, changed_keys=changed, initial_state=initial)


class Store:
    def __init__(self, path: str, *, synchronous: str = "NORMAL") -> None:
        self.path = path
        self.synchronous = synchronous
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._queue: asyncio.Queue[_Submission | None] = asyncio.Queue()
        self._held: list[_Submission] = []
        """Submissions made with ``may_wait``, not yet in the queue (see :meth:`submit`)."""
        self._held_timer: asyncio.TimerHandle | None = None
        self._writer_task: asyncio.Task[None] | None = None
        self._checkpointer = Checkpointer(path)
        self.values = ValueFile(values_path(path))
        self._checkpoint_task: asyncio.Task[None] | None = None
        self._tasks = BackgroundTasks()
        self._observers: list[Callable[[float, int, int], None]] = []
        self.commits = 0

    # -- lifecycle -----------------------------------------------------------

    async def open(self, tasks: BackgroundTasks | None = None) -> None:
        """Open (and migrate) the database and start the writer, as one of ``tasks`` if given."""
        self._writer = await self._connect()
        await self._migrate(self._writer)
        await self._writer.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer's job (see checkpoints.py)
        # The log's file is cut back to the size the checkpointer restarts it at (see checkpoints.py).
        await self._writer.execute(f"PRAGMA journal_size_limit={self._checkpointer.restart_bytes}")
        await self._writer.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
        await self._writer.execute("PRAGMA busy_timeout=0")  # a commit in place never waits (see _commit_inline)
        self._reader = await self._connect()
        await self._checkpointer.open()
        self._tasks = tasks or BackgroundTasks()
        self._writer_task = self._tasks.spawn(self._write_loop(), name="store-writer")
        self._checkpoint_task = self._tasks.spawn(self._checkpointer.run(), name="store-checkpointer")

    async def _connect(self) -> aiosqlite.Connection:
        # check_same_thread=False: the writer commits a small batch on the event loop's thread (see _commit).
        conn = await aiosqlite.connect(self.path, isolation_level=None, check_same_thread=False)
        for pragma in schema.PRAGMAS:
            await conn.execute(pragma.format(synchronous=self.synchronous))
        return conn

    async def _migrate(self, conn: aiosqlite.Connection) -> None:
        async with conn.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        version = int(row[0]) if row is not None else 0
        if version > schema.SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.path} has schema version {version}, newer than this awe ({schema.SCHEMA_VERSION})"
            )
        while version < schema.SCHEMA_VERSION:
            await conn.execute("BEGIN IMMEDIATE")
            for statement in schema.MIGRATIONS[version]:
                await conn.execute(statement)
            version += 1
            await conn.execute(f"PRAGMA user_version={version}")
            await conn.execute("COMMIT")

    async def close(self) -> None:
        """Commit everything already submitted, then close the connections."""
        if self._writer_task is not None:
            if not self._writer_task.done():
                self._tasks.ending(self._writer_task)
                self._release_held()
                await self._queue.put(None)
                await asyncio.gather(self._writer_task, return_exceptions=True)
            self._writer_task = None
        if self._checkpoint_task is not None:
            await self._tasks.cancel(self._checkpoint_task)
            self._checkpoint_task = None
        await self._checkpointer.close()
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None
        self.values.close()

    # -- writes --------------------------------------------------------------

    def submit(
        self,
        records: list[Record],
        on_commit: OnCommit | None = None,
        on_error: OnError | None = None,
        *,
        may_wait: bool = False,
    ) -> None:
        """Queue records for the next commit.

        ``on_commit`` runs once they are durable. If they cannot be written at all (a value the
        database refuses), they are dropped, the rest of their batch is committed without them,
        and ``on_error`` is told why.

        ``may_wait``: nothing waits for these records, so they need no commit of their own. They
        are held until the next submission that does (and go before it, in the order submitted),
        or for :data:`MAY_WAIT_SECONDS` at most. A job's start and its result are then written in
        one commit, not two, when the job is quick.
        """
        submission = _Submission(records, on_commit, on_error)
        if may_wait and self._queue.empty():
            self._held.append(submission)
            if self._held_timer is None:
                self._held_timer = asyncio.get_running_loop().call_later(MAY_WAIT_SECONDS, self._release_held)
            return
        self._release_held()
        self._queue.put_nowait(submission)

    def _release_held(self) -> None:
        """Queue the held submissions, in the order they came."""
        if self._held_timer is not None:
            self._held_timer.cancel()
            self._held_timer = None
        for submission in self._held:
            self._queue.put_nowait(submission)
        self._held.clear()

    async def write(self, records: list[Record]) -> None:
        """Submit and wait until the records are durable (or raise why they cannot be)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def committed() -> None:
            if not done.done():
                done.set_result(None)

        def refused(error: BaseException) -> None:
            if not done.done():
                done.set_exception(error)

        self.submit(records, committed, refused)
        await done

    @property
    def backlog(self) -> int:
        return self._queue.qsize() + len(self._held)

    def file_sizes(self) -> dict[str, int]:
        """Bytes on the disk now, by file: the database, its write-ahead log and the values file."""
        sizes = {}
        for name, path in (("database", self.path), ("log", self._checkpointer.log_path), ("values", self.values.path)):
            try:
                sizes[name] = os.stat(path).st_size
            except OSError:  # no log between a clean close and the next write, no values file until a large value
                sizes[name] = 0
        return sizes

    @property
    def checkpoints(self) -> int:
        return self._checkpointer.checkpoints

    @property
    def log_restarts(self) -> int:
        return self._checkpointer.restarts

    async def _write_loop(self) -> None:
        while True:
            batch, stopping = await self._take_batch()
            if batch:
                refused = await self._commit_batch(batch)
                _run_callbacks(batch, refused)
            if self._checkpointer.restart_due:
                await self._restart_log()
            if stopping:
                return

    async def _restart_log(self) -> None:
        """Let the log start over (see :mod:`awe.store.checkpoints`); if it cannot, the next checkpoint asks again."""
        assert self._writer is not None, "store is not open"
        try:
            await _in_connection_thread(self._writer, restart_log, self._checkpointer)
        except sqlite3.Error as exc:
            log.warning("log_restart_failed", error=repr(exc))
        finally:
            self._checkpointer.restart_due = False

    async def _take_batch(self) -> tuple[list[_Submission], bool]:
        """Everything queued, up to ``MAX_BATCH`` and ``MAX_BATCH_INPUT_CHARACTERS``, waiting for the
        first; True once told to stop."""
        first = await self._queue.get()
        if first is None:
            return [], True
        batch = [first]
        characters = first.input_characters()
        while len(batch) < MAX_BATCH and characters < MAX_BATCH_INPUT_CHARACTERS and not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None:
                return batch, True
            batch.append(item)
            characters += item.input_characters()
        return batch, False

    async def _commit_batch(self, batch: list[_Submission]) -> dict[int, BaseException]:
        """Commit the batch; returns the submissions (by index) that had to be left out, with why.

        A record the database refuses must not hold up everyone else's: the batch is then committed
        one submission at a time, so that only the refused ones are left out.
        """
        error = await self._commit_retrying(batch)
        if error is None:
            return {}
        if len(batch) > 1:
            log.warning("batch_refused", error=repr(error), submissions=len(batch))
            refused: dict[int, BaseException] = {}
            for index, submission in enumerate(batch):
                if (error := await self._commit_retrying([submission])) is not None:
                    refused[index] = error
        else:
            refused = {0: error}
        for error in refused.values():
            log.error("records_refused", error=repr(error))
        return refused

    async def _commit_retrying(self, batch: list[_Submission]) -> BaseException | None:
        """Commit, waiting out a busy or failing disk for as long as it takes; None, or the refusal.

        Nothing acknowledged is dropped because the disk is full or the file locked: the writer
        waits, and the API's answers wait with it.
        """
        delay = 0.05
        while True:
            try:
                await self._commit(batch)
                return None
            except Exception as exc:
                await self._rollback()
                if not _is_transient(exc):
                    return exc
                log.error("commit_failed", error=repr(exc), retry_in=delay, submissions=len(batch))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _rollback(self) -> None:
        assert self._writer is not None, "store is not open"
        with contextlib.suppress(sqlite3.Error, ValueError):
            await self._writer.execute("ROLLBACK")

    def observe_commits(self, observer: Callable[[float, int, int], None]) -> None:
        """Call ``observer(seconds, submissions, characters)`` after each commit (for metrics).

        ``characters``: the length of the state JSON the commit wrote (initial states and changed
        keys), which shows whether a state's unchanged values are written again.
        """
        self._observers.append(observer)

    async def _commit(self, batch: list[_Submission]) -> None:
        started = time.perf_counter()
        rows = _Rows.of(batch)
        conn = self._writer
        assert conn is not None, "store is not open"
        statements = rows.statements(self.values)
        if rows.whole:
            statements.extend(self._removed_input_keys(rows.whole))
        if self.values.unflushed or not (
            self._may_commit_inline(statements) and _commit_inline(_sqlite(conn), statements)
        ):
            await _in_connection_thread(conn, _write_transaction_waiting, statements, self.values.flush)
        self.commits += 1
        self._checkpointer.committed(rows.logged_characters)
        for observer in self._observers:
            observer(time.perf_counter() - started, len(batch), rows.state_characters)

    def _removed_input_keys(self, run_ids: list[str]) -> Statements:
        """:data:`schema.REMOVE_INPUT_KEYS` for initial states kept in the values file, whose keys SQLite cannot see.

        Read on the writer's connection between its transactions. Only a record of a whole state
        without its initial state takes this path, and the run machine makes none.
        """
        assert self._writer is not None, "store is not open"
        db = _sqlite(self._writer)
        removed: list[tuple[Any, ...]] = []
        for run_id in run_ids:
            row = db.execute("SELECT initial_state FROM run_inputs WHERE run_id = ?", (run_id,)).fetchone()
            if row is not None and isinstance(row[0], bytes):
                removed.extend((run_id, key) for key in self._json(row[0]))
        return [(schema.INSERT_REMOVED_KEY, removed)] if removed else []

    def _json(self, stored: str | bytes | None) -> Any:
        """A value as a row holds it (JSON text, or a reference to the values file), read."""
        return _loads(self.values.text(stored) if isinstance(stored, bytes) else stored)

    def _may_commit_inline(self, statements: Statements) -> bool:
        """Whether this commit is small enough to make on the event loop's thread.

        A commit handed to the writer's thread waits for that thread to wake and then for the
        event loop to wake again: two hops of 0.1-0.2 ms each, more than writing a step's few rows
        takes (0.1 ms). A small commit therefore runs where it is, as any callback would; a large
        one (a big state, a burst of runs), or one that waits for the disk (``FULL`` syncs every
        commit), still goes to the thread, and the event loop stays free meanwhile.
        """
        if self.synchronous != "NORMAL":
            return False
        if sum(len(params) for _, params in statements) > INLINE_ROWS:
            return False
        size = 0
        for _, params in statements:
            for row in params:
                for value in row:
                    if isinstance(value, str):
                        size += len(value)
        return size <= INLINE_CHARACTERS

    # -- graphs --------------------------------------------------------------

    async def register_graph(self, graph_id: str, fingerprint: str, definition: dict[str, Any]) -> int:
        """The version under which this Python graph's topology is stored; a changed one gets a new one."""
        latest = await self._fetchone(
            "SELECT version, fingerprint, source, deleted_at FROM graphs WHERE graph_id = ?"
            " ORDER BY version DESC LIMIT 1",
            (graph_id,),
        )
        if latest is not None and tuple(latest[1:]) == (fingerprint, "python", None):
            return int(latest[0])
        version = 1 if latest is None else int(latest[0]) + 1
        await self.write([GraphRecord(graph_id, version, fingerprint, definition, utcnow())])
        return version

    async def next_graph_version(self, graph_id: str) -> int:
        """The number a new version of ``graph_id`` takes (versions are never reused, even after a delete)."""
        row = await self._fetchone("SELECT MAX(version) FROM graphs WHERE graph_id = ?", (graph_id,))
        return int(row[0] or 0) + 1

    async def graph_records(self, *, source: str | None = None, graph_id: str | None = None) -> list[GraphRecord]:
        """Stored graph versions that are not deleted, oldest first."""
        rows = await self._fetchall(
            "SELECT graph_id, version, fingerprint, definition, created_at, source, deleted_at FROM graphs"
            " WHERE deleted_at IS NULL AND (? IS NULL OR source = ?) AND (? IS NULL OR graph_id = ?)"
            " ORDER BY graph_id, version",
            (source, source, graph_id, graph_id),
        )
        return [
            GraphRecord(
                graph_id=r[0],
                version=r[1],
                fingerprint=r[2],
                definition=_loads(r[3]),
                created_at=r[4],
                source=r[5],
                deleted_at=r[6],
            )
            for r in rows
        ]

    # -- reads ---------------------------------------------------------------

    async def _fetchone(self, sql: str, params: Iterable[Any] = ()) -> Any:
        """The first row of a query that returns at most one (see :meth:`_fetchall`)."""
        rows = await self._fetchall(sql, params)
        return rows[0] if rows else None

    async def _fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        """Every row, in one call on the reader's thread, so that a cancelled read leaves no statement open.

        A read cancelled while its cursor was being opened (the handler of a WebSocket whose client
        left) never got the cursor to close it, and aiosqlite's thread holds its last result until
        its next call has run. An open statement holds the connection's snapshot: that next read
        missed what was committed meanwhile, and a run just answered with 202 was a 404.
        """
        assert self._reader is not None, "store is not open"
        return list(await self._reader.execute_fetchall(sql, tuple(params)))

    async def get_run(self, run_id: str) -> RunRecord | None:
        row = await self._fetchone(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,))
        return None if row is None else (await self._with_states([row]))[0]

    async def existing_run_ids(self, run_ids: list[str]) -> set[str]:
        """Which of ``run_ids`` the store has a run for: one query per 500 ids, however many are asked."""
        found: set[str] = set()
        for start in range(0, len(run_ids), _IDS_PER_QUERY):
            chunk = run_ids[start : start + _IDS_PER_QUERY]
            sql = f"SELECT run_id FROM runs WHERE run_id IN ({', '.join('?' * len(chunk))})"
            found.update(row[0] for row in await self._fetchall(sql, chunk))
        return found

    async def _with_states(self, rows: list[Any]) -> list[RunRecord]:
        """Run records from ``runs`` rows, each with its state: the initial state (``run_inputs``) with
        the run's ``run_values`` laid over it, a NULL value being a key removed."""
        initial: dict[str, dict[str, Any]] = {}
        changes: dict[str, list[tuple[str, str | bytes | None]]] = {row[0]: [] for row in rows}
        ids = list(changes)
        for start in range(0, len(ids), _IDS_PER_QUERY):
            chunk = ids[start : start + _IDS_PER_QUERY]
            marks = ", ".join("?" * len(chunk))
            sql = (
                f"SELECT run_id, NULL, initial_state FROM run_inputs WHERE run_id IN ({marks})"
                f" UNION ALL SELECT run_id, key, value FROM run_values WHERE run_id IN ({marks})"
            )
            for run_id, key, value in await self._fetchall(sql, chunk + chunk):
                if key is None:
                    initial[run_id] = self._json(value)
                else:
                    changes[run_id].append((key, value))
        return [_run_from_row(row, _state(initial.get(row[0], {}), changes[row[0]], self._json)) for row in rows]

    async def list_runs(
        self, *, status: str | None = None, graph_id: str | None = None, limit: int = 50
    ) -> list[RunRecord]:
        """The newest runs first, *without their states* (``state`` is empty): a listing shows none."""
        where, params = [], []
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if graph_id is not None:
            where.append("graph_id = ?")
            params.append(graph_id)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self._fetchall(
            f"SELECT {_RUN_COLUMNS} FROM runs {clause} ORDER BY created_at DESC LIMIT ?", (*params, limit)
        )
        return [_run_from_row(r, {}) for r in rows]

    async def runs_changed_since(
        self, cursor: tuple[str, str], *, status: str | None, graph_id: str | None, limit: int
    ) -> list[RunRecord]:
        """Runs whose last change comes after ``cursor`` (``(updated_at, run_id)``), oldest change first,
        without their states (as :meth:`list_runs`)."""
        rows = await self._fetchall(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE (updated_at, run_id) > (?, ?)"
            " AND (? IS NULL OR status = ?) AND (? IS NULL OR graph_id = ?)"
            " ORDER BY updated_at, run_id LIMIT ?",
            (*cursor, status, status, graph_id, graph_id, limit),
        )
        return [_run_from_row(r, {}) for r in rows]

    async def initial_state(self, run_id: str) -> dict[str, Any] | None:
        """The state a run started from (None for a run written before it was kept)."""
        row = await self._fetchone("SELECT initial_state FROM run_inputs WHERE run_id = ?", (run_id,))
        return None if row is None else self._json(row[0])

    async def forks_of(self, run_id: str) -> list[str]:
        """The runs forked from ``run_id``, oldest first."""
        rows = await self._fetchall(
            "SELECT run_id FROM runs WHERE json_extract(options, '$.forked_from.run_id') = ? ORDER BY created_at",
            (run_id,),
        )
        return [str(r[0]) for r in rows]

    async def unfinished_runs(self) -> list[RunRecord]:
        rows = await self._fetchall(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE status IN ('queued', 'running', 'paused') ORDER BY created_at"
        )
        return await self._with_states(rows)

    async def steps(self, run_id: str, *, step: int | None = None) -> list[StepRecord]:
        """A run's step records (or one step's): by step, branch (``w[2]`` before ``w[10]``), attempt."""
        rows = await self._fetchall(
            "SELECT run_id, step, node, attempt, status, worker_id, started_at, finished_at, duration_ms,"
            " delta, removed, route, error, branch FROM steps WHERE run_id = ? AND (? IS NULL OR step = ?)"
            " ORDER BY step, node, length(branch), branch, attempt",
            (run_id, step, step),
        )
        return [_step_from_row(r, self._json) for r in rows]

    async def events_after(self, run_id: str, seq: int, limit: int = 1000) -> list[EventRecord]:
        rows = await self._fetchall(
            "SELECT run_id, seq, time, event, level, node, worker, fields FROM events"
            " WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (run_id, seq, limit),
        )
        return [
            EventRecord(
                run_id=r[0], seq=r[1], time=r[2], event=r[3], level=r[4], node=r[5], worker=r[6], fields=_loads(r[7])
            )
            for r in rows
        ]

    async def present_workers(self) -> list[str]:
        """The workers that joined and were not seen leaving (by the coordinator that last wrote here)."""
        rows = await self._fetchall("SELECT worker_id FROM workers WHERE left_at IS NULL ORDER BY worker_id")
        return [str(r[0]) for r in rows]

    async def last_seq(self, run_id: str) -> int:
        row = await self._fetchone("SELECT MAX(seq) FROM events WHERE run_id = ?", (run_id,))
        return int(row[0] or 0)


_RUN_COLUMNS = (
    "run_id, graph_id, graph_version, status, step_count, current_node, plan, error,"
    " options, created_at, updated_at, started_at, finished_at"
)

_IDS_PER_QUERY = 500
"""Run ids per ``IN (...)`` list: well under SQLite's limit on a statement's parameters."""


def _run_row(r: RunRecord) -> tuple[Any, ...]:
    return (
        r.run_id,
        r.graph_id,
        r.graph_version,
        r.status,
        r.step_count,
        r.current_node,
        _dumps(r.plan),
        None if r.error is None else _dumps(r.error),
        _dumps(r.options),
        r.created_at,
        r.updated_at,
        r.started_at,
        r.finished_at,
    )


def _run_from_row(row: Any, state: dict[str, Any]) -> RunRecord:
    (
        run_id,
        graph_id,
        version,
        status,
        step_count,
        current,
        plan,
        error,
        options,
        created,
        updated,
        started,
        finished,
    ) = row
    return RunRecord(
        run_id=run_id,
        graph_id=graph_id,
        graph_version=version,
        status=status,
        state=state,
        step_count=step_count,
        current_node=current,
        plan=_loads(plan),
        error=_loads(error),
        options=_loads(options),
        created_at=created,
        updated_at=updated,
        started_at=started,
        finished_at=finished,
    )


def _step_row(s: StepRecord) -> tuple[Any, ...]:
    return (
        s.run_id,
        s.step,
        s.branch,
        s.node,
        s.attempt,
        s.status,
        s.worker_id,
        _dumps(s.delta),
        _dumps(s.removed),
        _dumps(s.route),
        None if s.error is None else _dumps(s.error),
        s.started_at,
        s.finished_at,
        s.duration_ms,
    )


def _step_from_row(r: Any, read: Callable[[str | bytes | None], Any]) -> StepRecord:
    (run_id, step, node, attempt, status, worker_id, started_at, finished_at, duration_ms) = r[:9]
    return StepRecord(
        run_id=run_id,
        step=step,
        node=node,
        attempt=attempt,
        status=status,
        worker_id=worker_id,
        started_at=started_at,
        finished_at=finished_at,
        duration_ms=duration_ms,
        delta=read(r[9]),
        removed=_loads(r[10]),
        route=_loads(r[11]),
        error=_loads(r[12]),
        branch=r[13],
    )


def _graph_row(g: GraphRecord) -> tuple[Any, ...]:
    return (g.graph_id, g.version, g.fingerprint, _dumps(g.definition), g.created_at, g.source)


def _event_row(e: EventRecord) -> tuple[Any, ...]:
    return (e.run_id, e.seq, e.time, e.event, e.level, e.node, e.worker, _dumps(e.fields))


Statements = list[tuple[str, list[tuple[Any, ...]]]]


def _write_transaction(db: sqlite3.Connection, statements: Statements) -> None:
    """BEGIN, every statement, COMMIT, on the connection's own thread (a failure is rolled back by the caller)."""
    db.execute("BEGIN")
    for statement, params in statements:
        db.executemany(statement, params)
    db.execute("COMMIT")


def _commit_inline(db: sqlite3.Connection, statements: Statements) -> bool:
    """Commit on the calling thread unless the database is locked (False: nothing was written).

    The writer's connection waits for no lock (``busy_timeout`` 0), so that another process
    holding the database cannot stall the event loop: the caller then commits on the writer's
    thread, which waits as long as it must (:func:`_write_transaction_waiting`).
    """
    try:
        _write_transaction(db, statements)
        return True
    except sqlite3.OperationalError as exc:
        if db.in_transaction:
            db.execute("ROLLBACK")
        if "locked" in str(exc).lower() or "busy" in str(exc).lower():
            return False
        raise


def _write_transaction_waiting(db: sqlite3.Connection, statements: Statements, flush: Callable[[], None]) -> None:
    """:func:`_write_transaction` on the writer's own thread, where waiting for another connection's lock is fine.

    ``flush`` first: the values file's bytes are on the disk before any row that refers to them.
    """
    flush()
    db.execute(f"PRAGMA busy_timeout={schema.BUSY_TIMEOUT_MS}")
    try:
        _write_transaction(db, statements)
    finally:
        db.execute("PRAGMA busy_timeout=0")


def _sqlite(conn: aiosqlite.Connection) -> sqlite3.Connection:
    """The sqlite3 connection under an aiosqlite one (opened with ``check_same_thread=False``)."""
    db: sqlite3.Connection = conn._conn  # aiosqlite's own handle; the store tests fail loudly if it goes
    return db


async def _in_connection_thread(conn: aiosqlite.Connection, fn: Callable[..., None], *args: Any) -> None:
    """Run ``fn(sqlite3_connection, *args)`` on aiosqlite's thread for ``conn``, in one hop.

    A transaction of BEGIN, five statements and COMMIT through aiosqlite's public calls is seven
    hops between the event loop and that thread, about 0.1 ms each: most of what a step's commit
    costs, and a commit is on the path of every step. aiosqlite runs any function on its thread
    with ``Connection._execute`` (there since 0.17; the store tests fail loudly if it goes).
    """
    await conn._execute(fn, conn._conn, *args)  # type: ignore[no-untyped-call]  # aiosqlite leaves it untyped


def _is_transient(exc: BaseException) -> bool:
    """A busy or locked database, or a full or failing disk: worth waiting for, not the records' fault.

    An ``OSError`` comes from the values file (a full disk, a file past its size limit), as SQLite's
    own disk errors come as ``OperationalError``.
    """
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        return any(word in text for word in ("locked", "busy", "disk", "i/o", "full", "unable to open"))
    return isinstance(exc, OSError)


def _run_callbacks(batch: list[_Submission], refused: dict[int, BaseException]) -> None:
    """In submission order, so that facts are acted on in the order they happened."""
    for index, submission in enumerate(batch):
        try:
            if index in refused:
                if submission.on_error is not None:
                    submission.on_error(refused[index])
            elif submission.on_commit is not None:
                submission.on_commit()
        except Exception:
            log.exception("store_callback_failed")
