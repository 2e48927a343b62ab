"""Copying the write-ahead log into the database file, beside the writer rather than inside its commits.

In WAL mode every commit appends to ``<db>-wal``; a *checkpoint* copies those pages into
the database file so that the log can start over. SQLite's default runs it inside the
commit that takes the log past 1,000 pages, on the committing connection: that commit
then also writes every page a second time and waits for two fsyncs. For a 1 MB state it
doubled what creating a run cost, and it is the long tail of a small step's commit.

So the writer's connection has automatic checkpoints off, and :class:`Checkpointer` runs
``PRAGMA wal_checkpoint(PASSIVE)`` on a connection (and thread) of its own once enough has
been committed, or a second after the last commit. A passive checkpoint waits for no one:
the writer goes on appending meanwhile, and whatever the checkpoint could not copy yet it
copies the next time. The log is never lost or skipped by this, only copied later: a
reader sees the last commit either way, and a crash replays the log on the next open.
"""

from __future__ import annotations

import asyncio
import sqlite3

import aiosqlite
import structlog

log = structlog.get_logger("awe.store")

COMMITS_PER_CHECKPOINT = 100
"""A checkpoint after this many commits (small steps touch a handful of pages each)..."""

CHARACTERS_PER_CHECKPOINT = 4_000_000
"""...or once this much state JSON was written (about SQLite's own 1,000 pages of 4 KiB)..."""

IDLE_SECONDS = 1.0
"""...or this long after a commit that no checkpoint has covered yet."""


class Checkpointer:
    """Runs passive checkpoints of one database on its own connection; :meth:`committed` says when."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: aiosqlite.Connection | None = None
        self._due = asyncio.Event()
        self._commits = 0
        self._characters = 0
        self.checkpoints = 0

    async def open(self) -> None:
        self._conn = await aiosqlite.connect(self.path, isolation_level=None)
        await self._conn.execute("PRAGMA busy_timeout=5000")

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    def committed(self, characters: int) -> None:
        """The writer committed a transaction that wrote ``characters`` of state JSON."""
        self._commits += 1
        self._characters += characters
        if self._commits >= COMMITS_PER_CHECKPOINT or self._characters >= CHARACTERS_PER_CHECKPOINT:
            self._due.set()

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
            self._commits = self._characters = 0
            await self.checkpoint()

    async def checkpoint(self) -> None:
        """One passive checkpoint; a failure is logged and the next one tries again (the log just grows)."""
        assert self._conn is not None, "checkpointer is not open"
        try:
            async with self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)") as cursor:
                await cursor.fetchall()
            self.checkpoints += 1
        except sqlite3.Error as exc:
            log.warning("checkpoint_failed", error=repr(exc))
