"""The rows the coordinator persists, as plain values.

A record is built at the moment its fact becomes true and is never mutated
afterwards; the writer may serialise it later (at commit time), so anything
it refers to, like a run's state dict, must not change in place either.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def utcnow() -> str:
    """An ISO-8601 UTC timestamp with microseconds; sorts as text.

    Every record carries one: the text up to the second is formatted once per second, not per call.
    """
    now = time.time()
    second = int(now)
    cached_second, prefix = _SECOND[0]
    if second != cached_second:
        prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _SECOND[0] = (second, prefix)  # one assignment: a thread never sees half of it
    return f"{prefix}.{int((now - second) * 1_000_000):06d}Z"


_SECOND: list[tuple[int, str]] = [(-1, "")]


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    graph_id: str
    graph_version: int
    status: str
    state: dict[str, Any]
    step_count: int
    current_node: str | None
    plan: dict[str, Any]
    """The current step's branches still to finish (``tasks``: branch, node, attempt, a Send's
    payload, a final error) and each join's finished sources (``joins``); see ``run_machine``."""
    error: dict[str, Any] | None
    options: dict[str, Any]
    created_at: str
    updated_at: str
    started_at: str | None = None
    finished_at: str | None = None
    initial_state: dict[str, Any] | None = None
    """Set on a run's first record only: the state it started from, kept for history and forks."""
    changed_keys: frozenset[str] | None = None
    """The top-level state keys whose values changed since the run's previous record: the store writes
    only these. None (a new run, or a record made to be shown) stands for all of them."""


@dataclass(frozen=True)
class StepRecord:
    """One attempt at one branch of one step of a run."""

    run_id: str
    step: int
    """The superstep: branches that ran in parallel share it."""
    node: str
    attempt: int
    status: str
    """``completed``, ``failed`` or ``lost``."""
    worker_id: str | None
    started_at: str
    finished_at: str
    duration_ms: float
    delta: dict[str, Any] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    route: Any = None
    error: dict[str, Any] | None = None
    branch: str = ""
    """Unique within the step: the node's name (the default), or ``node[i]`` for its i-th Send."""

    def __post_init__(self) -> None:
        if not self.branch:
            object.__setattr__(self, "branch", self.node)


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
    """One version of a graph: a Python graph's topology (``CompiledGraph.describe()``), or a JSON
    graph's whole definition, from which any process can rebuild it."""

    graph_id: str
    version: int
    fingerprint: str
    definition: dict[str, Any]
    created_at: str
    source: str = "python"
    """``python`` (defined in a graph module) or ``json`` (created over the API)."""
    deleted_at: str | None = None


@dataclass(frozen=True)
class GraphDeletion:
    """Every version of a graph is withdrawn: no new run may start on it (its runs stay readable)."""

    graph_id: str
    deleted_at: str


@dataclass(frozen=True)
class WorkerPresence:
    """A worker joined (``left_at`` None) or left. After a restart, the coordinator waits for the
    workers still present to say Hello (they report the jobs they run) before it sends those jobs again."""

    worker_id: str
    joined_at: str
    left_at: str | None = None


Record = RunRecord | StepRecord | EventRecord | GraphRecord | GraphDeletion | WorkerPresence
