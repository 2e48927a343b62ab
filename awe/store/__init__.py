"""Durable storage of graphs, runs, steps and run events (SQLite, WAL, group commit).

The records are plain values (:mod:`awe.store.records`) that the pure run
state machine builds; the SQLite store that writes them is
:class:`awe.store.sqlite.Store`, imported from its module so that the records
can be used without aiosqlite.
"""

from awe.store.records import EventRecord, GraphDeletion, GraphRecord, RunRecord, StepRecord, WorkerPresence, utcnow

__all__ = ["EventRecord", "GraphDeletion", "GraphRecord", "RunRecord", "StepRecord", "WorkerPresence", "utcnow"]
