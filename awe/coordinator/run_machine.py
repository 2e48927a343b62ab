"""The life of one run, as a pure state machine: facts in, instructions out.

:class:`Run` does no I/O and never awaits. Each handler takes one fact (a
job was sent, a job finished, a job failed, a worker vanished) and returns the
instructions that follow from it: records to persist, jobs to dispatch once
those records are durable, whether the run is over. The coordinator's
:mod:`~awe.coordinator.service` executes them. Keeping the rules here means
they can be tested without sockets, and that every status change passes
through :data:`TRANSITIONS`.

A run advances in **steps** (LangGraph's supersteps). A step runs one or more
**branches** in parallel, each a node on the state as it was when the step
began (or, for a ``Send``, on its own payload). A branch's result is
persisted the moment it arrives; when the last branch of the step is in, the
updates are applied in branch order through the keys' reducers, the edges,
routers and joins of the finished nodes name the next step's branches, and
the new state and plan are committed together. A crash in the middle of a
step therefore re-runs only the branches whose results were not yet saved.
"""

from __future__ import annotations

import random
from enum import StrEnum
from typing import Any

from awe import jsondata
from awe.coordinator.events import RunEvent
from awe.coordinator.plan import BranchResult, Instructions, JobInput, JobSpec, Pause, Task, join_key
from awe.graph import END, CompiledGraph, RouteError, Write, WriteConflict, apply_writes
from awe.graph.reducers import ReducerFailed, changed_keys
from awe.store import EventRecord, RunRecord, StepRecord

_JITTER = random.Random()
"""Retry delays' jitter for every run (seeding a generator per run costs more than the rest of a new run)."""


class RunStatus(StrEnum):
    QUEUED = "queued"
    """Accepted and durable; no worker has taken its first job yet."""
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PAUSED = "paused"
    """Waiting for a person (see ``Pause``): no job is out, no worker slot is held; ``resume`` goes on."""


TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.RUNNING: frozenset({RunStatus.PAUSED, RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.PAUSED: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED}),
    RunStatus.COMPLETED: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
}
"""Every legal status change."""

FINISHED = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)

DEFAULT_MAX_STEPS = 100
"""Steps a run may take before it fails; a run request may set its own ``max_steps``."""

MAX_LOST_IN_A_ROW = 5
"""Times one branch may lose its worker in a row before the run fails: a node that kills its process
(a segfault, the OOM killer) would otherwise take down every worker in turn, forever."""


RESUME = "__resume__"
"""The node and branch name of the step record a person's state update is kept as."""


class IllegalTransition(RuntimeError):
    pass


class NotPaused(RuntimeError):
    """Only a paused run can be resumed."""

    def __init__(self, run_id: str, status: str) -> None:
        super().__init__(f"run {run_id!r} is {status}, not paused: only a paused run can be resumed")


__all__ = [
    "DEFAULT_MAX_STEPS",
    "FINISHED",
    "MAX_LOST_IN_A_ROW",
    "TRANSITIONS",
    "IllegalTransition",
    "Instructions",
    "JobSpec",
    "Run",
    "RunStatus",
]


class Run:
    def __init__(
        self,
        *,
        graph: CompiledGraph,
        graph_version: int,
        record: RunRecord,
        last_seq: int = 0,
        finished_branches: list[StepRecord] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """``finished_branches``: the completed step records of the current step (after a restart)."""
        self.graph = graph
        self.graph_version = graph_version
        self.run_id = record.run_id
        self.status = RunStatus(record.status)
        self.state: dict[str, Any] = record.state
        self.step_count = record.step_count
        self.current_node = record.current_node
        self.error = record.error
        self.options = record.options
        self.created_at = record.created_at
        self.started_at = record.started_at
        self.finished_at = record.finished_at
        self.updated_at = record.updated_at
        self.seq = last_seq
        tasks = [Task.from_json(t) for t in record.plan.get("tasks", [])]
        self.tasks: dict[str, Task] = {t.branch: t for t in sorted(tasks, key=lambda t: t.order)}
        self.joins_seen: dict[str, set[str]] = {k: set(v) for k, v in record.plan.get("joins", {}).items()}
        self.results: dict[str, BranchResult] = {}
        for step in finished_branches or []:
            if step.step == self.step and step.status == "completed" and step.branch in self.tasks:
                self.results[step.branch] = BranchResult(step.node, step.delta, step.removed, step.route)
        self.in_flight: dict[str, JobSpec] = {}
        self.rng = rng or _JITTER
        pause = record.plan.get("pause")
        self.pause: Pause | None = Pause.from_json(pause) if pause else None
        self.cleared = bool(record.plan.get("cleared", False))
        """The current step's ``interrupt_before`` pause has been resumed: dispatch it."""
        self.resumes = int(record.plan.get("resumes", 0))
        """State updates recorded in the current step (each is one ``__resume__`` step record)."""
        self.replaying = False
        """Rebuilding a past run (see ``replay``): nothing pauses, as nothing did when it ran."""
        self._unsaved: set[str] | None = set()
        """Top-level state keys changed since the last record (None: all of them, for a run not yet stored)."""
        self.max_state_bytes: int | None = None
        """A step that makes the state larger than this, as JSON, fails the run (StateTooLarge)."""
        self.max_events: int | None = None
        """Past this many events, nodes' log lines are dropped (the engine's own events are always kept)."""
        self._sizes: dict[str, tuple[Any, int]] = {}
        """Each state key's value and its size as JSON, so a step measures only the values it changed."""
        self._logs_dropped = False

    @classmethod
    def create(
        cls,
        *,
        run_id: str,
        graph: CompiledGraph,
        graph_version: int,
        state: dict[str, Any],
        options: dict[str, Any],
        now: str,
    ) -> tuple[Run, Instructions]:
        """A new run, queued at the graph's entry point."""
        return cls.fork(
            run_id=run_id,
            graph=graph,
            graph_version=graph_version,
            state=state,
            step_count=0,
            tasks=[Task(graph.entry)],
            joins={},
            options=options,
            now=now,
        )

    @classmethod
    def fork(
        cls,
        *,
        run_id: str,
        graph: CompiledGraph,
        graph_version: int,
        state: dict[str, Any],
        step_count: int,
        tasks: list[Task],
        joins: dict[str, list[str]],
        options: dict[str, Any],
        now: str,
    ) -> tuple[Run, Instructions]:
        """A queued run about to take step ``step_count + 1``: a new run's first, or the one after the step
        of the run it was forked from (``options["forked_from"]`` says which)."""
        record = RunRecord(
            run_id=run_id,
            graph_id=graph.name,
            graph_version=graph_version,
            status=RunStatus.QUEUED,
            state=state,
            step_count=step_count,
            current_node=tasks[0].node,
            plan={"tasks": [t.to_json() for t in tasks], "joins": joins},
            error=None,
            options=options,
            created_at=now,
            updated_at=now,
        )
        run = cls(graph=graph, graph_version=graph_version, record=record)
        run._unsaved = None  # nothing of it is stored yet
        out = Instructions()
        fields = {
            "graph_id": graph.name,
            **({"forked_from": options["forked_from"]} if "forked_from" in options else {}),
        }
        out.records.append(run._event(now, RunEvent.RUN_QUEUED, fields=fields))
        if run._pauses_before_step():
            run._pause_before_step(out, now)
        else:
            out.records.append(run._record())
        return run, out

    # -- queries ---------------------------------------------------------------

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    @property
    def step(self) -> int:
        """The step under way (the one after the last completed)."""
        return self.step_count + 1

    @property
    def max_steps(self) -> int:
        return int(self.options.get("max_steps", DEFAULT_MAX_STEPS))

    @property
    def is_paused(self) -> bool:
        return self.status is RunStatus.PAUSED

    def _declared(self, key: str) -> frozenset[str]:
        """Nodes to pause at, declared on the graph or in the run request (``interrupt_before`` / ``_after``)."""
        if self.replaying:
            return frozenset()
        declared: frozenset[str] = getattr(self.graph, key)
        return declared | frozenset(self.options.get(key, ()))

    @property
    def pause_on_error(self) -> bool:
        return not self.replaying and bool(self.graph.pause_on_error or self.options.get("pause_on_error"))

    def next_jobs(self) -> list[JobSpec]:
        """The jobs of the current step that are neither done nor out."""
        if self.is_finished or self.is_paused or self._failing():
            return []
        return [self._job(t) for t in self._waiting()]

    def wants(self, job: JobSpec) -> bool:
        """Whether ``job`` is still to be sent: its branch is waiting for exactly this attempt."""
        task = self.tasks.get(job.branch)
        return (
            not self.is_finished
            and task is not None
            and job.step == self.step
            and job.attempt == task.attempt
            and job.branch not in self.results
            and job.branch not in self.in_flight
            and task.interrupt is None
            and not self.is_paused
            and not self._failing()
        )

    def job_input(self, job: JobSpec) -> JobInput:
        """What the job's node runs on (the state, or a Send's payload), with the person's answer if any."""
        task = self.tasks[job.branch]
        if task.payload is not None:
            return JobInput(task.payload, from_send=True, answer=task.answer)
        return JobInput(self.state, answer=task.answer)

    def snapshot(
        self, *, changed_keys: frozenset[str] | None = None, initial_state: dict[str, Any] | None = None
    ) -> RunRecord:
        """The run as it is now, to show (a record to store comes from :meth:`_record`, which fills in
        the other two fields: built in one go, as ``dataclasses.replace`` costs more than the rest)."""
        plan: dict[str, Any] = {"tasks": [], "joins": {}}
        if not self.is_finished:
            plan = {
                "tasks": [t.to_json() for t in self.tasks.values()],
                "joins": {k: sorted(v) for k, v in self.joins_seen.items() if v},
            }
            if self.pause is not None:
                plan["pause"] = self.pause.to_json()
            if self.cleared:
                plan["cleared"] = True
            if self.resumes:
                plan["resumes"] = self.resumes
        return RunRecord(
            run_id=self.run_id,
            graph_id=self.graph.name,
            graph_version=self.graph_version,
            status=self.status.value,
            state=self.state,
            step_count=self.step_count,
            current_node=self.current_node,
            plan=plan,
            error=self.error,
            options=self.options,
            created_at=self.created_at,
            updated_at=self.updated_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            initial_state=initial_state,
            changed_keys=changed_keys,
        )

    def _record(self) -> RunRecord:
        """The run as it is now, to store: it names the state keys changed since the previous one.

        Only the changed keys are written (a 1 MB value that no node touches is written once),
        so every record of a run must reach the store, in order: instructions carry them there.
        """
        changed, self._unsaved = self._unsaved, set()
        if changed is None:  # a new run's first record: its state is the initial one, kept for history and forks
            return self.snapshot(initial_state=self.state)
        return self.snapshot(changed_keys=frozenset(changed))

    def _set_state(self, state: dict[str, Any]) -> None:
        """Replace the state with a new dict (records already handed to the store keep the old one)."""
        old, self.state = self.state, state
        if self._unsaved is not None:
            changed, removed = changed_keys(old, state)
            self._unsaved.update(changed, removed)

    # -- facts -------------------------------------------------------------------

    def recover(self, now: str) -> Instructions:
        """A coordinator picks the run up from the store after a restart: send what its step still waits for.

        A branch that had failed for good was waiting for its siblings, which are not coming back
        from the previous coordinator: the run fails now.
        """
        self._require_active("recover")
        if self.is_paused:
            return Instructions()  # it waits for a person, holding nothing
        failed = self._failed_task()
        if failed is not None and failed.error is not None:
            return self._fail(Instructions(), now, node=failed.node, branch=failed.branch, error=failed.error)
        if not self._waiting() and not self.in_flight:
            # Every branch is in. A step's last result and the next step commit together, so this
            # takes a store written otherwise; a plan with nothing left to wait for must still advance.
            return self._next_step(Instructions(), now)
        return Instructions(dispatch=self.next_jobs())

    def job_sent(self, job: JobSpec, worker_id: str, now: str) -> Instructions:
        self._require_active("job_sent")
        out = Instructions(may_wait=True)  # the run starting and the node starting are reports: see may_wait
        self.in_flight[job.branch] = job
        self.current_node = job.node
        started = self.status is RunStatus.QUEUED
        if started:
            self._move(RunStatus.RUNNING, now)
            self.started_at = now
            out.records.append(self._event(now, RunEvent.RUN_STARTED, worker=worker_id))
        out.records.append(
            self._event(now, RunEvent.NODE_STARTED, node=job.node, worker=worker_id, fields=self._where(job))
        )
        if started:  # otherwise nothing durable changed: the next snapshot carries current_node
            out.records.append(self._record())
        return out

    def job_done(
        self,
        job: JobSpec,
        *,
        worker_id: str,
        delta: dict[str, Any],
        removed: list[str],
        route: Any,
        started_at: str,
        now: str,
        duration_ms: float,
    ) -> Instructions:
        self._require_active("job_done")
        self.in_flight.pop(job.branch, None)
        self.tasks[job.branch].lost_in_a_row = 0
        self.results[job.branch] = BranchResult(job.node, delta, removed, route)
        out = Instructions(
            records=[
                self._step_record(
                    job,
                    "completed",
                    worker_id,
                    started_at,
                    now=now,
                    duration_ms=duration_ms,
                    delta=delta,
                    removed=removed,
                    route=route,
                )
            ]
        )
        out.records.append(
            self._event(
                now,
                RunEvent.NODE_COMPLETED,
                node=job.node,
                worker=worker_id,
                fields={
                    **self._where(job),
                    "duration_ms": round(duration_ms, 3),
                    "updated_keys": sorted(delta),
                    "removed_keys": removed,
                },
            )
        )
        return self._after_branch(out, now)

    def job_failed(
        self,
        job: JobSpec,
        *,
        worker_id: str,
        error: dict[str, Any],
        started_at: str,
        now: str,
        duration_ms: float,
        retryable: bool = False,
    ) -> Instructions:
        self._require_active("job_failed")
        self.in_flight.pop(job.branch, None)
        task = self.tasks[job.branch]
        task.lost_in_a_row = 0
        task.failures += 1
        out = Instructions(
            records=[
                self._step_record(job, "failed", worker_id, started_at, now=now, duration_ms=duration_ms, error=error)
            ]
        )
        policy = self.graph.nodes[job.node].retry
        # Lost attempts do not spend the policy's budget: the node did not fail, its worker did.
        will_retry = retryable and task.failures < policy.max_attempts and not self._failing()
        out.records.append(
            self._event(
                now,
                RunEvent.NODE_FAILED,
                node=job.node,
                worker=worker_id,
                level="warning" if will_retry else "error",
                fields={
                    **self._where(job),
                    "error_type": error.get("type"),
                    "message": error.get("message"),
                    "will_retry": will_retry,
                },
            )
        )
        if not will_retry:
            task.error = {**error, "attempts": job.attempt}
            return self._after_branch(out, now)
        delay = policy.delay(job.attempt, self.rng)
        task.attempt = job.attempt + 1
        out.records.append(
            self._event(
                now,
                RunEvent.NODE_RETRYING,
                node=job.node,
                level="warning",
                fields={
                    **self._where(job),
                    "attempt": task.attempt,
                    "delay_s": round(delay, 3),
                    "max_attempts": policy.max_attempts,
                },
            )
        )
        out.records.append(self._record())
        out.dispatch = [self._job(task)]
        out.dispatch_delay = delay
        return out

    def job_lost(self, job: JobSpec, *, worker_id: str, reason: str, started_at: str, now: str) -> Instructions:
        """The worker running ``job`` is gone: record the lost attempt and send the branch again."""
        self._require_active("job_lost")
        self.in_flight.pop(job.branch, None)
        task = self.tasks[job.branch]
        task.attempt = job.attempt + 1
        task.lost_in_a_row += 1
        out = Instructions(
            records=[
                self._step_record(
                    job,
                    "lost",
                    worker_id,
                    started_at,
                    now=now,
                    duration_ms=0.0,
                    error={"type": "WorkerLost", "message": reason},
                )
            ]
        )
        out.records.append(
            self._event(
                now,
                RunEvent.NODE_LOST,
                node=job.node,
                worker=worker_id,
                level="warning",
                fields={**self._where(job), "reason": reason},
            )
        )
        if task.lost_in_a_row >= MAX_LOST_IN_A_ROW:
            task.error = {
                "type": "WorkerLost",
                "attempts": job.attempt,
                "message": f"node {job.node!r} lost its worker {task.lost_in_a_row} times in a row (last: {reason}); "
                "a node that crashes or exhausts its process is not run again",
            }
            return self._after_branch(out, now)
        out.records.append(self._record())
        if not self._failing():
            out.dispatch = [self._job(task)]
        elif not self.in_flight:
            return self._after_branch(out, now)
        return out

    def job_interrupted(
        self, job: JobSpec, *, worker_id: str, payload: Any, started_at: str, now: str, duration_ms: float
    ) -> Instructions:
        """The node raised ``Interrupt(payload)``: it waits for a person's answer; its siblings go on."""
        self._require_active("job_interrupted")
        self.in_flight.pop(job.branch, None)
        task = self.tasks[job.branch]
        task.lost_in_a_row = 0
        task.interrupt = {"payload": payload}
        task.answer = None
        task.attempt = job.attempt + 1
        error = {"type": "Interrupt", "message": "the node asks a person", "payload": payload}
        record = self._step_record(
            job, "interrupted", worker_id, started_at, now=now, duration_ms=duration_ms, error=error
        )
        out = Instructions(records=[record])
        fields = {**self._where(job), "payload": payload}
        out.records.append(self._event(now, RunEvent.NODE_INTERRUPTED, node=job.node, worker=worker_id, fields=fields))
        return self._after_branch(out, now)

    def resume(self, *, state_update: dict[str, Any], answer: dict[str, Any] | None, by: str, now: str) -> Instructions:
        """A person goes on with a paused run, after changing its state and answering its question.

        ``state_update`` (top-level keys, replacing their values) is recorded as a step record of
        its own (``__resume__``, with ``by`` in its route) and applied at once. ``answer`` (as
        ``{"value": ...}``) goes to every branch that raised ``Interrupt``, which run again. A
        branch that failed for good (``pause_on_error``) gets a fresh retry budget.
        """
        if not self.is_paused or self.pause is None:
            raise NotPaused(self.run_id, self.status.value)
        pause, out = self.pause, Instructions()
        if state_update:
            self._set_state({**self.state, **state_update})
            self.resumes += 1
            out.records.append(self._resume_record(state_update, by, now))
        self.pause = None
        self.cleared = pause.reason == "interrupt_before"
        self._release_paused_tasks(answer)
        self._move(RunStatus.RUNNING, now)
        fields = {
            "by": by,
            "reason": pause.reason,
            "updated_keys": sorted(state_update),
            "answered": answer is not None,
        }
        out.records.append(self._event(now, RunEvent.RUN_RESUMED, node=pause.node, fields=fields))
        if not self._waiting() and not self.in_flight and not self._failing() and self.results:
            return self._next_step(out, now)  # every branch was in when it paused
        out.records.append(self._record())
        out.dispatch = self.next_jobs()
        return out

    def advance(self, results: dict[str, BranchResult], now: str) -> Instructions:
        """Close the current step with these branch results, as if they had just come in (a replay)."""
        self.results = dict(results)
        return self._next_step(Instructions(), now)

    def _release_paused_tasks(self, answer: dict[str, Any] | None) -> None:
        for task in self.tasks.values():
            if task.interrupt is not None:
                task.interrupt = None
                task.answer = answer
            if task.error is not None:
                task.error = None
                task.failures = 0
                task.attempt += 1

    def _resume_record(self, state_update: dict[str, Any], by: str, now: str) -> StepRecord:
        return StepRecord(
            run_id=self.run_id,
            step=self.step,
            node=RESUME,
            attempt=self.resumes,
            status="completed",
            worker_id=None,
            started_at=now,
            finished_at=now,
            duration_ms=0.0,
            delta=state_update,
            route={"by": by},
            branch=RESUME,
        )

    def cancel(self, now: str, *, reason: str = "cancelled by request") -> Instructions:
        """End the run now; its jobs in flight (if any) are to be stopped on their workers."""
        self._require_active("cancel")
        out = Instructions(cancel=list(self.in_flight.values()))
        self.in_flight = {}
        self.pause = None
        self._move(RunStatus.CANCELLED, now)
        self.finished_at = now
        out.records.append(self._event(now, RunEvent.RUN_CANCELLED, node=self.current_node, fields={"reason": reason}))
        out.records.append(self._record())
        out.finished = True
        return out

    def fail(self, error: dict[str, Any], now: str) -> Instructions:
        """End the run as failed for a reason outside its graph: the engine cannot go on with it.

        For instance its records could not be stored, or its job could not be sent. ``error`` has
        at least ``type`` and ``message``; the jobs still in flight are to be stopped.
        """
        self._require_active("fail")
        node = self.current_node or self.graph.entry
        return self._fail(Instructions(), now, node=node, branch=node, error=error)

    def waiting(self, job: JobSpec, reason: str, now: str) -> Instructions:
        """No connected worker can run ``job``: say so in the run's stream; the job stays queued."""
        self._require_active("waiting")
        fields = {**self._where(job), "reason": reason}
        return Instructions(
            records=[self._event(now, RunEvent.RUN_WAITING, node=job.node, level="warning", fields=fields)]
        )

    def node_log(
        self, *, node: str, worker_id: str, level: str, event: str, fields: dict[str, Any], now: str
    ) -> Instructions:
        if self.max_events is not None and self.seq >= self.max_events:
            if self._logs_dropped:
                return Instructions()
            self._logs_dropped = True  # one last line says why the rest are missing
            level, event = "warning", "node log lines dropped"
            fields = {"reason": f"the run has {self.seq} events, its limit (--max-events-per-run)"}
        return Instructions(
            records=[
                self._event(
                    now,
                    RunEvent.NODE_LOG,
                    node=node,
                    worker=worker_id,
                    level=level,
                    fields={"message": event, **fields},
                )
            ]
        )

    # -- the step boundary ---------------------------------------------------------

    def _after_branch(self, out: Instructions, now: str) -> Instructions:
        """A branch is done (or failed for good): wait for the others, then fail or take the next step."""
        if self.in_flight:
            if self._failing():
                out.records.append(self._record())  # the branch's final error is part of the plan
            return out
        failed = self._failed_task()
        if failed is not None and failed.error is not None:
            if self.pause_on_error:
                error = {**failed.error, "node": failed.node}
                return self._pause(out, now, Pause("error", failed.node, [failed.branch], error=error))
            return self._fail(out, now, node=failed.node, branch=failed.branch, error=failed.error)
        if self._waiting():
            return out  # a branch waits for its retry's back-off
        interrupted = [t for t in self.tasks.values() if t.interrupt is not None]
        if interrupted:
            payload = (interrupted[0].interrupt or {}).get("payload")
            pause = Pause("interrupt", interrupted[0].node, [t.branch for t in interrupted], payload=payload)
            return self._pause(out, now, pause)
        return self._next_step(out, now)

    def _pause(self, out: Instructions, now: str, pause: Pause) -> Instructions:
        """Wait for a person: persist why, send nothing (the run holds no worker slot meanwhile)."""
        self.pause = pause
        self.current_node = pause.node
        self._move(RunStatus.PAUSED, now)
        out.records.append(self._event(now, RunEvent.RUN_PAUSED, node=pause.node, fields=pause.to_json()))
        out.records.append(self._record())
        out.dispatch = []
        return out

    def _pauses_before_step(self) -> bool:
        before = self._declared("interrupt_before")
        return not self.cleared and any(t.node in before for t in self.tasks.values())

    def _pause_before_step(self, out: Instructions, now: str) -> Instructions:
        before = self._declared("interrupt_before")
        branches = [b for b, t in self.tasks.items() if t.node in before]
        return self._pause(out, now, Pause("interrupt_before", self.tasks[branches[0]].node, branches))

    def _next_step(self, out: Instructions, now: str) -> Instructions:
        done = sorted(self.results.items(), key=lambda item: self.tasks[item[0]].order)
        writes = [Write(branch, r.delta, r.removed) for branch, r in done]
        try:
            state = apply_writes(self.state, writes, self.graph.reducers)
        except WriteConflict as exc:
            nodes = sorted({self.tasks[b].node for b in exc.branches})
            return self._fail(
                out,
                now,
                node=nodes[0],
                branch=exc.branches[0],
                error={
                    "type": "WriteConflict",
                    "message": str(exc),
                    "key": exc.key,
                    "branches": exc.branches,
                },
            )
        except ReducerFailed as exc:
            return self._fail(
                out,
                now,
                node=self.tasks[exc.branch].node,
                branch=exc.branch,
                error={"type": "ReducerFailed", "message": str(exc), "key": exc.key},
            )
        too_large = self._oversize(state, done)
        if too_large is not None:
            branch, node, error = too_large
            return self._fail(out, now, node=node, branch=branch, error=error)
        self._set_state(state)
        self.step_count = self.step
        self.results = {}
        names: list[str] = []
        sends: list[tuple[str, dict[str, Any]]] = []
        for branch, result in done:
            try:
                following, sent = self.graph.successors(result.node, result.route)
            except RouteError as exc:
                return self._fail(
                    out, now, node=result.node, branch=branch, error={"type": "RouteError", "message": str(exc)}
                )
            names += following
            sends += [(s.node, s.payload) for s in sent]
        names += self._fired_joins([r.node for _, r in done])
        following_tasks = [Task(name) for name in sorted(set(names) - {END})]
        per_node: dict[str, int] = {}
        for node, payload in sends:
            following_tasks.append(Task(node, index=per_node.get(node, 0), payload=payload))
            per_node[node] = per_node.get(node, 0) + 1

        self.tasks = {t.branch: t for t in sorted(following_tasks, key=lambda t: t.order)}
        out.records.append(
            self._event(
                now,
                RunEvent.STEP_COMPLETED,
                fields={"step": self.step_count, "branches": [b for b, _ in done], "next": list(self.tasks)},
            )
        )
        if not self.tasks:
            self._move(RunStatus.COMPLETED, now)
            self.finished_at = now
            self.current_node = done[-1][1].node
            out.records.append(
                self._event(now, RunEvent.RUN_COMPLETED, node=self.current_node, fields={"steps": self.step_count})
            )
            out.records.append(self._record())
            out.finished = True
            return out
        if self.step_count >= self.max_steps:
            return self._fail(
                out,
                now,
                node=done[-1][1].node,
                branch=done[-1][0],
                error={
                    "type": "StepLimitExceeded",
                    "message": f"the run reached its step limit of {self.max_steps} steps without finishing "
                    f"(next: {list(self.tasks)}); set max_steps in the run request to allow more",
                },
            )
        self.current_node = next(iter(self.tasks.values())).node
        self.cleared, self.resumes = False, 0
        after = [r.node for _, r in done if r.node in self._declared("interrupt_after")]
        if after:
            return self._pause(out, now, Pause("interrupt_after", after[0], list(self.tasks)))
        if self._pauses_before_step():
            return self._pause_before_step(out, now)
        out.records.append(self._record())
        out.dispatch = [self._job(t) for t in self.tasks.values()]
        return out

    def _oversize(
        self, state: dict[str, Any], done: list[tuple[str, BranchResult]]
    ) -> tuple[str, str, dict[str, Any]] | None:
        """None if ``state`` is within ``max_state_bytes``; else the branch and node of the largest write, and
        the run's error.

        Only the values this step changed are measured: the others keep the size measured before.
        """
        if self.max_state_bytes is None:
            return None
        sizes: dict[str, tuple[Any, int]] = {}
        total = 2  # {}
        for key, value in state.items():
            known = self._sizes.get(key)
            size = known[1] if known is not None and known[0] is value else jsondata.json_size({key: value}) - 1
            sizes[key] = (value, size)
            total += size
        if total <= self.max_state_bytes:
            self._sizes = sizes
            return None
        branch, result = max(done, key=lambda item: jsondata.json_size(item[1].delta))
        error = {
            "type": "StateTooLarge",
            "message": f"node {result.node!r} grew the run's state to {total} bytes as JSON, past the limit of "
            f"{self.max_state_bytes} (the coordinator's --max-state-bytes)",
        }
        return branch, result.node, error

    def _fired_joins(self, finished_nodes: list[str]) -> list[str]:
        """Record which join sources finished; the targets of the joins that are now complete."""
        fired = []
        for join in self.graph.joins:
            key = join_key(join.sources, join.target)
            seen = self.joins_seen.setdefault(key, set())
            seen.update(n for n in finished_nodes if n in join.sources)
            if seen == set(join.sources):
                fired.append(join.target)
                seen.clear()
        return fired

    # -- internals ---------------------------------------------------------------

    def _waiting(self) -> list[Task]:
        """Branches still to send: not done, not out, not failed for good, not waiting for an answer."""
        return [
            t
            for b, t in self.tasks.items()
            if b not in self.results and b not in self.in_flight and t.error is None and t.interrupt is None
        ]

    def _failing(self) -> bool:
        return self._failed_task() is not None

    def _failed_task(self) -> Task | None:
        """The first branch of the step that has failed for good, if any."""
        return next((t for t in self.tasks.values() if t.error is not None), None)

    def _job(self, task: Task) -> JobSpec:
        return JobSpec(
            self.run_id, self.graph.name, task.node, self.step, task.attempt, task.branch, self.graph_version
        )

    @staticmethod
    def _where(job: JobSpec) -> dict[str, Any]:
        where: dict[str, Any] = {"step": job.step, "attempt": job.attempt}
        if job.branch != job.node:
            where["branch"] = job.branch
        return where

    def _step_record(
        self, job: JobSpec, status: str, worker_id: str, started_at: str, *, now: str, duration_ms: float, **rest: Any
    ) -> StepRecord:
        return StepRecord(
            run_id=self.run_id,
            step=job.step,
            node=job.node,
            attempt=job.attempt,
            status=status,
            worker_id=worker_id,
            started_at=started_at,
            finished_at=now,
            duration_ms=duration_ms,
            branch=job.branch,
            **rest,
        )

    def _fail(self, out: Instructions, now: str, *, node: str, branch: str, error: dict[str, Any]) -> Instructions:
        self.error = {"node": node, **({"branch": branch} if branch != node else {}), **error}
        self.current_node = node
        out.cancel = list(self.in_flight.values())
        self.in_flight = {}
        self._move(RunStatus.FAILED, now)
        self.finished_at = now
        out.records.append(
            self._event(
                now,
                RunEvent.RUN_FAILED,
                node=node,
                level="error",
                fields={
                    "error_type": error.get("type"),
                    "message": error.get("message"),
                    **({"branch": branch} if branch != node else {}),
                },
            )
        )
        out.records.append(self._record())
        out.dispatch = []
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
        self,
        now: str,
        name: RunEvent,
        *,
        node: str | None = None,
        worker: str | None = None,
        level: str = "info",
        fields: dict[str, Any] | None = None,
    ) -> EventRecord:
        self.seq += 1
        self.updated_at = now
        return EventRecord(
            run_id=self.run_id,
            seq=self.seq,
            time=now,
            event=name.value,
            level=level,
            node=node,
            worker=worker,
            fields=fields or {},
        )
