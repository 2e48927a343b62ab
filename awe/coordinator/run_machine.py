"""The life of one run, as a pure state machine: facts in, instructions out.

:class:`Run` does no I/O and never awaits. Each handler takes one fact (a
job was sent, a job finished, a job failed, a worker vanished) and returns the
instructions that follow from it: records to persist, a job to dispatch once
those records are durable, whether the run is over. The coordinator's
:mod:`~awe.coordinator.service` executes them. Keeping the rules here means
they can be tested without sockets, and that every status change passes
through :data:`TRANSITIONS`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from awe.coordinator.events import RunEvent
from awe.graph import END, CompiledGraph, RouteError
from awe.store import EventRecord, RunRecord, StepRecord


class RunStatus(StrEnum):
    QUEUED = "queued"
    """Accepted and durable; no worker has taken its first job yet."""
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.RUNNING: frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.COMPLETED: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
}
"""Every legal status change. A ``paused`` status would be one more row here."""

FINISHED = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)

DEFAULT_MAX_STEPS = 100
"""Node executions a run may take before it fails; a run request may set its own ``max_steps``."""

MAX_LOST_IN_A_ROW = 5
"""Times one step may lose its worker in a row before the run fails: a node that kills its process
(a segfault, the OOM killer) would otherwise take down every worker in turn, forever."""


class IllegalTransition(RuntimeError):
    pass


@dataclass(frozen=True)
class JobSpec:
    """One attempt at one node of one run."""

    run_id: str
    graph_id: str
    node: str
    step: int
    attempt: int

    @property
    def job_id(self) -> str:
        return f"{self.run_id}:{self.step}:{self.node}:{self.attempt}"


@dataclass
class Instructions:
    """What the coordinator must do after a fact: persist, then (once durable) dispatch."""

    records: list[Any] = field(default_factory=list)
    dispatch: JobSpec | None = None
    dispatch_delay: float = 0.0
    """Seconds to wait (after the commit) before dispatching: a retry's back-off."""
    cancel: JobSpec | None = None
    """A job in flight that its worker should stop."""
    finished: bool = False


class Run:
    def __init__(
        self,
        *,
        graph: CompiledGraph,
        graph_version: int,
        record: RunRecord,
        last_seq: int = 0,
        rng: random.Random | None = None,
    ) -> None:
        self.graph = graph
        self.graph_version = graph_version
        self.run_id = record.run_id
        self.status = RunStatus(record.status)
        self.state: dict[str, Any] = record.state
        self.step_count = record.step_count
        self.current_node = record.current_node
        self.next_node = record.next_node
        self.error = record.error
        self.options = record.options
        self.created_at = record.created_at
        self.started_at = record.started_at
        self.finished_at = record.finished_at
        self.updated_at = record.updated_at
        self.seq = last_seq
        self.in_flight: JobSpec | None = None
        self.attempt = record.next_attempt
        self.lost_in_a_row = 0
        """Consecutive lost attempts of the current step; counted from this coordinator's start."""
        self.rng = rng or random.Random()

    @classmethod
    def create(
        cls, *, run_id: str, graph: CompiledGraph, graph_version: int, state: dict[str, Any],
        options: dict[str, Any], now: str,
    ) -> tuple[Run, Instructions]:  # fmt: skip
        """A new run, queued at the graph's entry point."""
        record = RunRecord(
            run_id=run_id, graph_id=graph.name, graph_version=graph_version, status=RunStatus.QUEUED,
            state=state, step_count=0, current_node=graph.entry, next_node=graph.entry, error=None,
            options=options, created_at=now, updated_at=now,
        )  # fmt: skip
        run = cls(graph=graph, graph_version=graph_version, record=record)
        out = Instructions()
        out.records.append(run._event(now, RunEvent.RUN_QUEUED, fields={"graph_id": graph.name}))
        out.records.append(run.snapshot())
        return run, out

    # -- queries ---------------------------------------------------------------

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    def next_job(self) -> JobSpec | None:
        """The job the run is waiting for, if it is not finished."""
        if self.is_finished or self.next_node is None:
            return None
        return JobSpec(self.run_id, self.graph.name, self.next_node, self.step_count + 1, self.attempt)

    def snapshot(self) -> RunRecord:
        return RunRecord(
            run_id=self.run_id, graph_id=self.graph.name, graph_version=self.graph_version,
            status=self.status.value, state=self.state, step_count=self.step_count,
            current_node=self.current_node, next_node=self.next_node, error=self.error,
            options=self.options, created_at=self.created_at, updated_at=self.updated_at,
            started_at=self.started_at, finished_at=self.finished_at, next_attempt=self.attempt,
        )  # fmt: skip

    # -- facts -------------------------------------------------------------------

    def job_sent(self, job: JobSpec, worker_id: str, now: str) -> Instructions:
        self._require_active("job_sent")
        out = Instructions()
        self.in_flight = job
        self.current_node = job.node
        if self.status is RunStatus.QUEUED:
            self._move(RunStatus.RUNNING, now)
            self.started_at = now
            out.records.append(self._event(now, RunEvent.RUN_STARTED, worker=worker_id))
        out.records.append(
            self._event(now, RunEvent.NODE_STARTED, node=job.node, worker=worker_id,
                        fields={"step": job.step, "attempt": job.attempt})
        )  # fmt: skip
        out.records.append(self.snapshot())
        return out

    def job_done(
        self, job: JobSpec, *, worker_id: str, delta: dict[str, Any], removed: list[str], route: Any,
        started_at: str, now: str, duration_ms: float,
    ) -> Instructions:  # fmt: skip
        self._require_active("job_done")
        self.in_flight = None
        self.lost_in_a_row = 0
        state = {k: v for k, v in self.state.items() if k not in removed} if removed else dict(self.state)
        state.update(delta)
        # A new dict, never an in-place update: records already handed to the store may still refer
        # to the old one, and must keep describing the state as it was when they were made.
        self.state = state
        self.step_count = job.step
        step = StepRecord(
            run_id=self.run_id, step=job.step, node=job.node, attempt=job.attempt, status="completed",
            worker_id=worker_id, started_at=started_at, finished_at=now, duration_ms=duration_ms,
            delta=delta, removed=removed, route=route,
        )  # fmt: skip
        out = Instructions(records=[step])
        out.records.append(
            self._event(now, RunEvent.NODE_COMPLETED, node=job.node, worker=worker_id,
                        fields={"step": job.step, "attempt": job.attempt, "duration_ms": round(duration_ms, 3),
                                "updated_keys": sorted(delta), "removed_keys": removed})
        )  # fmt: skip
        try:
            following = self.graph.next_node(job.node, route)
        except RouteError as exc:
            return self._fail(out, now, node=job.node, error={"type": "RouteError", "message": str(exc)})
        self.attempt = 1
        if following == END:
            self.next_node = None
            self._move(RunStatus.COMPLETED, now)
            self.finished_at = now
            out.records.append(
                self._event(now, RunEvent.RUN_COMPLETED, node=job.node, fields={"steps": self.step_count})
            )
            out.records.append(self.snapshot())
            out.finished = True
            return out
        if self.step_count >= self.max_steps:
            return self._fail(out, now, node=job.node, error={
                "type": "StepLimitExceeded",
                "message": f"the run reached its step limit of {self.max_steps} steps without finishing "
                           f"(next node {following!r}); set max_steps in the run request to allow more",
            })  # fmt: skip
        self.next_node = following
        self.current_node = following
        out.records.append(self.snapshot())
        out.dispatch = self.next_job()
        return out

    @property
    def max_steps(self) -> int:
        return int(self.options.get("max_steps", DEFAULT_MAX_STEPS))

    def job_failed(
        self, job: JobSpec, *, worker_id: str, error: dict[str, Any], started_at: str, now: str,
        duration_ms: float, retryable: bool = False,
    ) -> Instructions:  # fmt: skip
        self._require_active("job_failed")
        self.in_flight = None
        self.lost_in_a_row = 0
        step = StepRecord(
            run_id=self.run_id, step=job.step, node=job.node, attempt=job.attempt, status="failed",
            worker_id=worker_id, started_at=started_at, finished_at=now, duration_ms=duration_ms, error=error,
        )  # fmt: skip
        out = Instructions(records=[step])
        policy = self.graph.nodes[job.node].retry
        will_retry = retryable and job.attempt < policy.max_attempts
        out.records.append(
            self._event(now, RunEvent.NODE_FAILED, node=job.node, worker=worker_id,
                        level="warning" if will_retry else "error",
                        fields={"step": job.step, "attempt": job.attempt, "error_type": error.get("type"),
                                "message": error.get("message"), "will_retry": will_retry})
        )  # fmt: skip
        if not will_retry:
            return self._fail(out, now, node=job.node, error={**error, "attempts": job.attempt})
        delay = policy.delay(job.attempt, self.rng)
        self.attempt = job.attempt + 1
        out.records.append(
            self._event(now, RunEvent.NODE_RETRYING, node=job.node, level="warning",
                        fields={"step": job.step, "attempt": self.attempt, "delay_s": round(delay, 3),
                                "max_attempts": policy.max_attempts})
        )  # fmt: skip
        out.records.append(self.snapshot())
        out.dispatch = self.next_job()
        out.dispatch_delay = delay
        return out

    def job_lost(self, job: JobSpec, *, worker_id: str, reason: str, started_at: str, now: str) -> Instructions:
        """The worker running ``job`` is gone: record the lost attempt and send the node again."""
        self._require_active("job_lost")
        self.in_flight = None
        step = StepRecord(
            run_id=self.run_id, step=job.step, node=job.node, attempt=job.attempt, status="lost",
            worker_id=worker_id, started_at=started_at, finished_at=now, duration_ms=0.0,
            error={"type": "WorkerLost", "message": reason},
        )  # fmt: skip
        self.attempt = job.attempt + 1
        self.lost_in_a_row += 1
        out = Instructions(records=[step])
        out.records.append(
            self._event(now, RunEvent.NODE_LOST, node=job.node, worker=worker_id, level="warning",
                        fields={"step": job.step, "attempt": job.attempt, "reason": reason})
        )  # fmt: skip
        if self.lost_in_a_row >= MAX_LOST_IN_A_ROW:
            return self._fail(out, now, node=job.node, error={
                "type": "WorkerLost", "attempts": job.attempt,
                "message": f"node {job.node!r} lost its worker {self.lost_in_a_row} times in a row (last: {reason}); "
                           "a node that crashes or exhausts its process is not run again",
            })  # fmt: skip
        out.records.append(self.snapshot())
        out.dispatch = self.next_job()
        return out

    def cancel(self, now: str, *, reason: str = "cancelled by request") -> Instructions:
        """End the run now; its job in flight (if any) is to be stopped on its worker."""
        self._require_active("cancel")
        out = Instructions(cancel=self.in_flight)
        self.in_flight = None
        self.next_node = None
        self._move(RunStatus.CANCELLED, now)
        self.finished_at = now
        out.records.append(self._event(now, RunEvent.RUN_CANCELLED, node=self.current_node, fields={"reason": reason}))
        out.records.append(self.snapshot())
        out.finished = True
        return out

    def node_log(self, *, node: str, worker_id: str, level: str, event: str, fields: dict[str, Any], now: str) -> Instructions:
        return Instructions(
            records=[self._event(now, RunEvent.NODE_LOG, node=node, worker=worker_id, level=level,
                                 fields={"message": event, **fields})]
        )  # fmt: skip

    # -- internals ---------------------------------------------------------------

    def _fail(self, out: Instructions, now: str, *, node: str, error: dict[str, Any]) -> Instructions:
        self.error = {"node": node, **error}
        self.next_node = None
        self.current_node = node
        self._move(RunStatus.FAILED, now)
        self.finished_at = now
        out.records.append(
            self._event(now, RunEvent.RUN_FAILED, node=node, level="error",
                        fields={"error_type": error.get("type"), "message": error.get("message")})
        )  # fmt: skip
        out.records.append(self.snapshot())
        out.finished = True
        return out

    def _require_active(self, fact: str) -> None:
        """Facts about jobs mean nothing once a run has finished; refuse them before changing anything."""
        if self.is_finished:
            raise IllegalTransition(f"run {self.run_id} is {self.status}: {fact} is not allowed")

    def _move(self, status: RunStatus, now: str) -> None:
        if status not in TRANSITIONS[self.status]:
            raise IllegalTransition(f"run {self.run_id}: {self.status} -> {status} is not allowed")
        self.status = status
        self.updated_at = now

    def _event(
        self, now: str, name: RunEvent, *, node: str | None = None, worker: str | None = None,
        level: str = "info", fields: dict[str, Any] | None = None,
    ) -> EventRecord:  # fmt: skip
        self.seq += 1
        self.updated_at = now
        return EventRecord(
            run_id=self.run_id, seq=self.seq, time=now, event=name.value, level=level, node=node,
            worker=worker, fields=fields or {},
        )  # fmt: skip
