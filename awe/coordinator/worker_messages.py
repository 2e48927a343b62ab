"""What the coordinator does with each message a worker sends: one handler per message type.

Messages come decoded and type-checked from the transport's single gate.
What a worker says about a run is checked once more here, against what the
engine can store (:mod:`awe.jsondata`): a node output that is not JSON data
fails that node, and free-form diagnostics (errors, log fields) are made
safe rather than refused. Everything then becomes a fact for the dispatcher
(who runs what) or for a run's state machine (through
:class:`~awe.coordinator.runs.ActiveRuns`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from awe import jsondata
from awe.coordinator.early_results import EarlyResults
from awe.coordinator.run_machine import Run
from awe.coordinator.runs import ActiveRuns
from awe.coordinator.worker_pool import Assignment, WorkerInfo
from awe.store import utcnow
from awe.transport import Message, RouterEndpoint
from awe.transport.messages import (
    Goodbye,
    Heartbeat,
    Hello,
    JobDone,
    JobFailed,
    JobInterrupted,
    NodeLog,
    Rejoin,
    StateMissing,
)

log = structlog.get_logger("awe.coordinator")

LOG_LEVELS = frozenset({"debug", "info", "warning", "error", "critical"})


class WorkerMessages:
    def __init__(self, endpoint: RouterEndpoint, runs: ActiveRuns, *, coordinator_id: str) -> None:
        self.endpoint = endpoint
        self.runs = runs
        self.dispatcher = runs.dispatcher
        self.coordinator_id = coordinator_id
        self.early_results = EarlyResults(self._awaited)
        self._handlers: dict[type[Message], Callable[[WorkerInfo, Any], None]] = {
            Heartbeat: self.dispatcher.on_heartbeat,
            Goodbye: self.dispatcher.on_goodbye,
            StateMissing: self.dispatcher.on_state_missing,
            JobDone: self._on_job_done,
            JobFailed: self._on_job_failed,
            JobInterrupted: self._on_job_interrupted,
            NodeLog: self._on_node_log,
        }

    async def serve(self) -> None:
        """Handle messages until cancelled; a handler that raises is logged and the loop goes on."""
        while True:
            identity, message = await self.endpoint.recv()
            try:
                await self.handle(identity, message)
            except Exception:
                log.exception("message_handler_failed", kind=message.kind)

    async def handle(self, identity: bytes, message: Message) -> None:
        if isinstance(message, Hello):
            await self._on_hello(identity, message)
            return
        worker = self.dispatcher.pool.get(identity)
        if worker is None:
            kept = isinstance(message, (JobDone, JobFailed)) and self.early_results.keep(
                identity, message, self.endpoint.last_frame_bytes
            )
            log.info("unknown_worker", peer=identity.decode(errors="replace"), kind=message.kind, kept=kept)
            await self.endpoint.send(identity, Rejoin(self.coordinator_id))
            return
        self.dispatcher.pool.seen(worker)
        handler = self._handlers.get(type(message))
        if handler is None:
            log.warning("message_dropped", worker=worker.worker_id, kind=message.kind, reason="not for the coordinator")
            return
        handler(worker, message)

    async def _on_hello(self, identity: bytes, msg: Hello) -> None:
        """Register the worker, then take the results it sent before we knew it.

        A worker that finished a job while the previous coordinator was down sends the result to
        us before its ``Hello``. The job is ours to wait for again (the same id, recovered from the
        store), so the result is as good as if we had sent the job: the dispatcher adopts those
        jobs with the ones still running, and the results are then handled as usual.
        """
        early = self.early_results.take(identity)
        await self.dispatcher.on_hello(identity, msg, finished=[m.job_id for m in early])
        worker = self.dispatcher.pool.get(identity)
        for result in early:
            if worker is not None:
                self._handlers[type(result)](worker, result)

    def _awaited(self, result: JobDone | JobFailed) -> bool:
        """Whether a run waits for the job a result answers: the only results worth keeping for a Hello.

        After a coordinator restart, that is a job held for its worker's Hello (see ``Dispatcher.hold``),
        or one in flight. A result that comes after its job was released to the queue is not kept: the
        job runs again, as it would had the result been lost. Both checks are O(1) per result (per
        branch for the second), so a flood of results cannot make the coordinator search its queue.
        """
        run = self.runs.get(result.run_id)
        if run is None:
            return False
        held = self.dispatcher.held.get(result.job_id)
        if held is not None:
            return held.run_id == run.run_id and run.wants(held)
        return any(job.job_id == result.job_id for job in run.in_flight.values())

    def _claim(self, worker: WorkerInfo, job_id: str, run_id: str) -> tuple[Run, Assignment] | None:
        """The run and assignment a result answers; None (logged) for a result nobody waits for."""
        assignment = self.dispatcher.finish(worker, job_id)
        run = self.runs.get(run_id)
        if assignment is None or run is None or run.in_flight.get(assignment.job.branch) != assignment.job:
            log.warning("stale_result_ignored", run_id=run_id, job_id=job_id, worker=worker.worker_id)
            return None
        return run, assignment

    def _on_job_done(self, worker: WorkerInfo, msg: JobDone) -> None:
        if (claimed := self._claim(worker, msg.job_id, msg.run_id)) is None:
            return
        run, assignment = claimed
        problem = _unstorable_output(msg)
        if problem is not None:
            error = {"type": "NodeOutputError", "message": problem}
            self._fail_job(run, assignment, worker, error, duration_ms=msg.duration_ms, retryable=False)
            return
        out = run.job_done(
            assignment.job,
            worker_id=worker.worker_id,
            delta=msg.delta,
            removed=msg.removed,
            route=msg.route,
            started_at=assignment.started_at,
            now=utcnow(),
            duration_ms=msg.duration_ms,
        )
        self.runs.apply(run, out)
        if out.finished:
            log.info("run_finished", run_id=run.run_id, status=run.status.value, steps=run.step_count)

    def _on_job_failed(self, worker: WorkerInfo, msg: JobFailed) -> None:
        if (claimed := self._claim(worker, msg.job_id, msg.run_id)) is None:
            return
        run, assignment = claimed
        error = jsondata.sanitize(msg.error)
        self._fail_job(run, assignment, worker, error, duration_ms=msg.duration_ms, retryable=msg.retryable)

    def _on_job_interrupted(self, worker: WorkerInfo, msg: JobInterrupted) -> None:
        if (claimed := self._claim(worker, msg.job_id, msg.run_id)) is None:
            return
        run, assignment = claimed
        try:
            jsondata.check(msg.payload, "the Interrupt's payload")
        except jsondata.NotJsonData as exc:
            error = {"type": "NodeOutputError", "message": str(exc)}
            self._fail_job(run, assignment, worker, error, duration_ms=msg.duration_ms, retryable=False)
            return
        out = run.job_interrupted(
            assignment.job,
            worker_id=worker.worker_id,
            payload=msg.payload,
            started_at=assignment.started_at,
            now=utcnow(),
            duration_ms=msg.duration_ms,
        )
        self.runs.apply(run, out)

    def _fail_job(
        self,
        run: Run,
        assignment: Assignment,
        worker: WorkerInfo,
        error: dict[str, Any],
        *,
        duration_ms: float,
        retryable: bool,
    ) -> None:
        out = run.job_failed(
            assignment.job,
            worker_id=worker.worker_id,
            error=error,
            started_at=assignment.started_at,
            now=utcnow(),
            duration_ms=duration_ms,
            retryable=retryable,
        )
        self.runs.apply(run, out)
        if out.finished:
            node = assignment.job.node
            log.info("run_finished", run_id=run.run_id, status=run.status.value, node=node, error=error.get("message"))

    def _on_node_log(self, worker: WorkerInfo, msg: NodeLog) -> None:
        run = self.runs.get(msg.run_id)
        if run is None or run.is_finished:
            return
        out = run.node_log(
            node=jsondata.clean_text(msg.node),
            worker_id=worker.worker_id,
            level=msg.level if msg.level in LOG_LEVELS else "info",
            event=jsondata.clean_text(msg.event),
            fields=jsondata.sanitize(msg.fields),
            now=utcnow(),
        )
        self.runs.apply(run, out)


def _unstorable_output(msg: JobDone) -> str | None:
    """Why a node's reported output cannot become state (None when it can)."""
    try:
        jsondata.check(msg.delta, "state")
        jsondata.check(msg.removed, "removed keys")
        jsondata.check(msg.route, "the router's answer")
    except jsondata.NotJsonData as exc:
        return f"the node's output cannot be stored: {exc}"
    return None
