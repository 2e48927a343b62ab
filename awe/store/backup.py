"""A copy of a store that a coordinator can start from, made while the engine runs: ``awe backup``.

A store is two files since large values moved beside the database (:mod:`awe.store.values`):
``<db>`` and ``<db>-values``. Copying them by hand while the engine writes can give a database
that refers to values the copied values file does not hold yet, or a torn database. So the
database is copied first, through SQLite's online backup (a consistent snapshot: the last
commit, whatever the writer does meanwhile), and the values file after it. The values file is
only ever appended to, and every value a commit refers to is on the disk before that commit,
so the later copy holds every value the snapshot refers to; what it holds more, nothing refers to.
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from awe.store.values import sync_path, values_path


class BackupError(Exception):
    """The backup cannot be made; the message names what and what to do."""


@dataclass(frozen=True)
class Backup:
    database: Path
    values: Path | None
    """None when the store has no values file (no value was ever large enough)."""
    runs: int
    value_bytes: int


def back_up(db: Path, target: Path) -> Backup:
    """Copy the store at ``db`` to ``target`` (and ``target``'s values file), synced; never overwrites."""
    if not db.is_file():
        raise BackupError(f"{db} is not a database file: name the engine's with --db (or AWE_DB)")
    target_values = Path(values_path(str(target)))
    for path in (target, target_values):
        if path.exists():
            raise BackupError(f"{path} exists: a backup never overwrites a file; name a new one")
    target.parent.mkdir(parents=True, exist_ok=True)
    runs = _copy_database(db, target)
    source_values = Path(values_path(str(db)))
    if not source_values.exists():
        sync_path(target.parent)
        return Backup(target, None, runs, 0)
    shutil.copyfile(source_values, target_values)
    sync_path(target_values)
    sync_path(target.parent)
    return Backup(target, target_values, runs, target_values.stat().st_size)


def _copy_database(db: Path, target: Path) -> int:
    """SQLite's online backup in one step (one read transaction: one snapshot); the runs it holds."""
    try:
        source = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)  # a path with ? or # too
        try:
            copy = sqlite3.connect(target)
            try:
                source.backup(copy)
                (runs,) = copy.execute("SELECT count(*) FROM runs").fetchone()
            finally:
                copy.close()
        finally:
            source.close()
    except sqlite3.Error as exc:
        target.unlink(missing_ok=True)
        raise BackupError(f"{db} cannot be copied: {exc}") from None
    sync_path(target)
    return int(runs)
