"""Durable storage of graphs, runs, steps and run events (SQLite, WAL, group commit)."""

from awe.store.records import EventRecord, GraphRecord, RunRecord, StepRecord, utcnow
from awe.store.sqlite import Store

__all__ = ["EventRecord", "GraphRecord", "RunRecord", "StepRecord", "Store", "utcnow"]
