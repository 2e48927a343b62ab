"""The rows the coordinator persists, as plain values.

A record is built at the moment its fact becomes true and is never mutated
afterwards; the writer may serialise it later (at commit time), so anything
it refers to, like a run's state dict, must not change in place either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any


def utcnow() -> str:
    """An ISO-8601 UTC timestamp with microseconds; sorts as text."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    graph_id: str
    graph_version: int
    status: str
    state: dict[str, Any]
    step_count: int
    current_node: str | None
    next_node: str | None
    """The node the run will execute next (None once it has finished)."""
    error: dict[str, Any] | None
    options: dict[str, Any]
    created_at: str
    updated_at: str
    started_at: str | None = None
    finished_at: str | None = None
    next_attempt: int = 1
    """The attempt number ``next_node`` will run as (above 1 after a failure or a lost worker)."""


@dataclass(frozen=True)
class StepRecord:
    """One attempt at one node of one run."""

    run_id: str
    step: int
    node: str
    attempt: int
    status: str
    """``completed`` or ``failed``."""
    worker_id: str | None
    started_at: str
    finished_at: str
    duration_ms: float
    delta: dict[str, Any] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    route: Any = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class EventRecord:
    """One entry of a run's event stream; ``seq`` counts from 1 within the run."""

    run_id: str
    seq: int
    time: str
    event: str
    level: str = "info"
    node: str | None = None
    worker: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "seq": self.seq,
            "time": self.time,
            "event": self.event,
            "level": self.level,
            "node": self.node,
            "worker": self.worker,
            "fields": self.fields,
        }


@dataclass(frozen=True)
class GraphRecord:
    """One version of a graph's topology, as ``CompiledGraph.describe()`` gives it."""

    graph_id: str
    version: int
    fingerprint: str
    definition: dict[str, Any]
    created_at: str


Record = RunRecord | StepRecord | EventRecord | GraphRecord
