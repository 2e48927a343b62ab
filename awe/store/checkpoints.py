"""Copying the write-ahead log into the database file, beside the writer rather than inside its commits.

In WAL mode every commit appends to ``<db>-wal``; a *checkpoint* copies those pages into
the database file so that the log can start over. SQLite's default runs it inside the
commit that takes the log past 1,000 pages, on the committing connection: that commit
then also writes every page a second time and waits for two fsyncs. For a 1 MB state it
doubled what creating a run cost, and it is the long tail of a small step's commit.

So the writer's connection has automatic checkpoints off, and :class:`Checkpointer` runs
``PRAGMA wal_checkpoint(PASSIVE)`` on a connection (and thread) of its own once enough has
been committed, or a second after the last commit, or once the log's file passes
:data:`RESTART_BYTES`. A passive checkpoint waits for no one:
the writer goes on appending meanwhile, and whatever the checkpoint could not copy yet it
copies the next time. The log is never lost or skipped by this, only copied later: a
reader sees the last commit either way, and a crash replays the log on the next open.

A passive checkpoint alone lets the log grow without end under steady load. The log
starts over only when a write finds every frame copied, and while commits keep coming
one always lands before the checkpoint ends. Measured here: 280 MB of log after 15,000
steps of ``chain10``, 530 MB with nodes in threads, growing as long as the load lasts.
So when a passive checkpoint leaves more than :data:`RESTART_BYTES` in the log, the
writer restarts it between two of its commits (:func:`restart_log`, on its own connection:
from any other, the restart would have to win the write lock from a writer that takes it
back within a millisecond). The restart copies what the passive checkpoint left, waits
at most :data:`RESTART_WAIT_MS` for readers to leave the log, and the next commit writes
the log from its start; the writer's ``journal_size_limit`` cuts the file back to
:data:`RESTART_BYTES`. Commits wait the few milliseconds that takes.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time

import aiosqlite
import structlog

log = structlog.get_logger("awe.store")

COMMITS_PER_CHECKPOINT = 100
"""A checkpoint after this many commits (small steps touch a handful of pages each)..."""

CHARACTERS_PER_CHECKPOINT = 4_000_000
"""...or once this much state JSON was written (about SQLite's own 1,000 pages of 4 KiB)..."""

IDLE_SECONDS = 1.0
"""...or this long after a commit that no checkpoint has covered yet."""

RESTART_BYTES = 64 * 1024 * 1024
"""A log longer than this after a passive checkpoint is restarted, and its file cut back to this size."""

RESTART_WAIT_MS = 50
"""How long a restart waits for readers, holding commits back meanwhile..."""

RESTART_RETRY_SECONDS = 1.0
"""...and how long after readers kept it from restarting the log is left to grow before the next try, so
that a long reader (``awe backup``, say) costs commits one wait a second, not one a commit."""


def restart_log(db: sqlite3.Connection, checkpointer: Checkpointer) -> None:
    """On the writer's connection and thread, between its transactions: copy what is left of the
    log into the database and make the next commit start the log over."""
    db.execute(f"PRAGMA busy_timeout={RESTART_WAIT_MS}")
    try:
        busy, _, _ = db.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
    finally:
        db.execute("PRAGMA busy_timeout=0")
    if busy:
        checkpointer.restart_refused()
    else:
        checkpointer.restarts += 1


class Checkpointer:
    """Runs passive checkpoints of one database on its own connection; :meth:`committed` says when."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.log_path = f"{path}-wal"
        """The write-ahead log's file, which SQLite names after the database."""
        self._conn: aiosqlite.Connection | None = None
        self._due = asyncio.Event()
        self._commits = 0
        self._characters = 0
        self.checkpoints = 0
        self.restarts = 0
        self.restarts_refused = 0
        self.restart_bytes = RESTART_BYTES
        self.restart_due = False
        """Set when a passive checkpoint left the log longer than ``restart_bytes``; the writer restarts it,
        and clears it once it tried. No passive checkpoint starts meanwhile: a restart that finds one
        running waits for it, and gives up as if a reader held the log."""
        self._no_restart_until = 0.0
        self._page_size = 4096

    async def open(self) -> None:
        self._conn = await aiosqlite.connect(self.path, isolation_level=None)
        await self._conn.execute("PRAGMA busy_timeout=5000")
        async with self._conn.execute("PRAGMA page_size") as cursor:
            row = await cursor.fetchone()
        self._page_size = int(row[0]) if row else self._page_size

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    def committed(self, characters: int) -> None:
        """The writer committed a transaction that wrote ``characters`` of state JSON."""
        self._commits += 1
        self._characters += characters
        if (
            self._commits >= COMMITS_PER_CHECKPOINT
            or self._characters >= CHARACTERS_PER_CHECKPOINT
            or self._log_past_bound()
        ):
            self._due.set()

    def restart_refused(self) -> None:
        """Readers kept the log from starting over (called on the writer's thread): let it grow a while."""
        self.restarts_refused += 1
        self._no_restart_until = time.monotonic() + RESTART_RETRY_SECONDS

    def _may_restart(self) -> bool:
        return time.monotonic() >= self._no_restart_until

    def _log_past_bound(self) -> bool:
        """Whether the log's file is longer than ``restart_bytes``. Its size is the most the log ever held,
        but a restart cuts it back to ``restart_bytes``, so any growth past that is the log's own."""
        if not self._may_restart():
            return False
        try:
            return os.stat(self.log_path).st_size > self.restart_bytes
        except OSError:
            return False

    async def run(self) -> None:
        """Checkpoint whenever one is due, until cancelled (a background task of the store)."""
        while True:
            try:
                # asyncio.timeout, not wait_for: no inner task, and on Python 3.11 wait_for can swallow
                # a cancellation that lands as the event is set, which would leave this loop running.
                async with asyncio.timeout(IDLE_SECONDS):
                    await self._due.wait()
            except TimeoutError:
                if not self._commits:
                    continue
            self._due.clear()
            if self.restart_due:  # the writer's restart copies the whole log, and would wait for this one
                continue
            self._commits = self._characters = 0
            await self.checkpoint()

    async def checkpoint(self) -> None:
        """One passive checkpoint, which asks the writer for a restart if it left the log long; a
        failure is logged and the next one tries again (the log just grows meanwhile)."""
        assert self._conn is not None, "checkpointer is not open"
        try:
            async with self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)") as cursor:
                row = await cursor.fetchone()
            self.checkpoints += 1
        except sqlite3.Error as exc:
            log.warning("checkpoint_failed", error=repr(exc))
            return
        frames = int(row[1]) if row is not None else 0
        if frames * self._page_size > self.restart_bytes and self._may_restart():
            self.restart_due = True
