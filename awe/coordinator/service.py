"""The coordinator: owns the graphs, the active runs, the store and the worker link.

It is the one object the HTTP layer talks to. Inside, it turns each message
from a worker into a fact for the run's state machine
(:mod:`~awe.coordinator.run_machine`) and carries out the instructions that
come back: persist the records, and only once they are committed, dispatch the
next job and publish the events.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import deque
from typing import Any

import structlog

from awe.coordinator.dispatcher import Dispatcher
from awe.coordinator.errors import RequestError, RunFinished, ShuttingDown, UnknownGraph, UnknownRun
from awe.coordinator.events import EventBus, Subscription
from awe.coordinator.plan import Instructions, JobSpec
from awe.coordinator.run_machine import DEFAULT_MAX_STEPS, Run, RunStatus
from awe.coordinator.worker_pool import Assignment, WorkerInfo, WorkerPool
from awe.graph import CompiledGraph
from awe.store import EventRecord, RunRecord, StepRecord, Store, utcnow
from awe.transport import RECONNECT_MAX_S, Message, RouterEndpoint
from awe.transport.messages import Goodbye, Heartbeat, Hello, JobDone, JobFailed, NodeLog, Rejoin

log = structlog.get_logger("awe.coordinator")

EARLY_RESULTS_KEPT = 10_000
"""Results from workers that have not said Hello yet, kept until they do (oldest dropped first)."""

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


class Coordinator:
    def __init__(
        self,
        *,
        graphs: dict[str, CompiledGraph],
        store: Store,
        bind: str,
        heartbeat_interval: float = 1.0,
        heartbeat_liveness: int = 3,
        drain_timeout: float = 10.0,
    ) -> None:
        self.graphs = graphs
        self.drain_timeout = drain_timeout
        self.graph_versions: dict[str, int] = {}
        self.store = store
        self.bind = bind
        self.coordinator_id = f"coordinator-{uuid.uuid4().hex[:8]}"
        self.bus = EventBus()
        self.pool = WorkerPool(heartbeat_interval=heartbeat_interval, liveness=heartbeat_liveness)
        self.runs: dict[str, Run] = {}
        self.endpoint: RouterEndpoint | None = None
        self.dispatcher: Dispatcher | None = None
        self._recv_task: asyncio.Task[None] | None = None
        self._early_results: deque[tuple[bytes, JobDone | JobFailed]] = deque(maxlen=EARLY_RESULTS_KEPT)
        self._accepting = False
        self._handlers = {
            Heartbeat: self._on_heartbeat,
            JobDone: self._on_job_done,
            JobFailed: self._on_job_failed,
            NodeLog: self._on_node_log,
            Goodbye: self._on_goodbye,
        }

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        await self.store.open()
        for name, graph in self.graphs.items():
            self.graph_versions[name] = await self.store.register_graph(name, graph.fingerprint, graph.describe())
        self.endpoint = RouterEndpoint(self.bind)
        self.dispatcher = Dispatcher(
            self.endpoint, self.pool, self, self._fingerprint, coordinator_id=self.coordinator_id
        )
        await self._resume_unfinished_runs()
        self.dispatcher.start()
        self._recv_task = asyncio.create_task(self._recv_loop(), name="coordinator-recv")
        self._accepting = True
        log.info(
            "coordinator_started", bind=self.endpoint.address, graphs=sorted(self.graphs), resumed_runs=len(self.runs)
        )

    async def stop(self) -> None:
        """Stop taking runs and sending jobs; give the jobs in flight ``drain_timeout`` seconds to report.

        Their results are persisted like any other. A job still out when time is up stays recorded as
        in flight, and the next coordinator on this database resumes its run (adopting the job if its
        worker still runs it).
        """
        self._accepting = False
        if self.dispatcher is not None and self._recv_task is not None:
            self.dispatcher.pause()
            log.info("coordinator_draining", in_flight=self.dispatcher.in_flight, timeout=self.drain_timeout)
            deadline = asyncio.get_running_loop().time() + self.drain_timeout
            while self.dispatcher.in_flight and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
        in_flight = self.dispatcher.in_flight if self.dispatcher is not None else 0
        if self._recv_task is not None:
            self._recv_task.cancel()
            await asyncio.gather(self._recv_task, return_exceptions=True)
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        if self.endpoint is not None:
            self.endpoint.close()
        await self.store.close()
        log.info("coordinator_stopped", unfinished_runs=len(self.runs), jobs_left_in_flight=in_flight)

    async def _resume_unfinished_runs(self) -> None:
        """Pick up, from their last committed step, the runs a previous coordinator left unfinished."""
        for record in await self.store.unfinished_runs():
            graph = self.graphs.get(record.graph_id)
            if graph is None or self.graph_versions.get(record.graph_id) != record.graph_version:
                log.warning(
                    "run_not_resumed",
                    run_id=record.run_id,
                    graph_id=record.graph_id,
                    reason="its graph version is not loaded",
                )
                continue
            finished_branches = await self.store.steps(record.run_id, step=record.step_count + 1)
            run = Run(
                graph=graph,
                graph_version=record.graph_version,
                record=record,
                last_seq=await self.store.last_seq(record.run_id),
                finished_branches=finished_branches,
            )
            self.runs[run.run_id] = run
            out = run.resume(utcnow())
            jobs, out.dispatch = out.dispatch, []
            self._apply(run, out)
            # A job may still be running on a worker, even for a run still recorded as queued (a job is
            # sent before its send is durable). That worker reconnects, its next heartbeat gets a Rejoin
            # (or its own liveness check fires), and it says Hello and keeps the job.
            grace = RECONNECT_MAX_S + self.pool.heartbeat_interval * self.pool.liveness
            for job in jobs:
                self.dispatcher.hold(job, seconds=grace)  # type: ignore[union-attr]

    # -- the API the HTTP layer uses ----------------------------------------------------

    async def submit_run(
        self, graph_id: Any, initial_state: Any, *, run_id: Any = None, max_steps: Any = None
    ) -> tuple[RunRecord, bool]:
        """Start a run; returns its record and whether it was created (False: that run_id exists)."""
        if not self._accepting:
            raise ShuttingDown()
        if not isinstance(graph_id, str):
            raise RequestError("'graph_id' must be a string naming a registered graph")
        graph = self.graphs.get(graph_id)
        if graph is None:
            raise UnknownGraph(graph_id)
        if not isinstance(initial_state, dict):
            raise RequestError("'initial_state' must be a JSON object")
        if max_steps is None:
            max_steps = DEFAULT_MAX_STEPS
        elif not isinstance(max_steps, int) or isinstance(max_steps, bool) or not 1 <= max_steps <= 1_000_000:
            raise RequestError("'max_steps' must be a whole number from 1 to 1000000")
        if run_id is None:
            run_id = uuid.uuid4().hex
        elif not isinstance(run_id, str) or not RUN_ID_PATTERN.match(run_id):
            raise RequestError("'run_id' must be 1-128 characters of letters, digits and _ . : -")
        else:
            existing = await self._existing_run(run_id)
            if existing is None and run_id in self.runs:  # submitted again while we were reading
                existing = self.runs[run_id].snapshot()
            if existing is not None:
                return existing, False
        run, out = Run.create(
            run_id=run_id,
            graph=graph,
            graph_version=self.graph_versions[graph_id],
            state=initial_state,
            options={"max_steps": max_steps},
            now=utcnow(),
        )
        self.runs[run_id] = run
        out.dispatch = run.next_jobs()
        committed = asyncio.get_running_loop().create_future()
        self._apply(run, out, then=lambda: committed.done() or committed.set_result(None))
        await committed
        log.info("run_queued", run_id=run_id, graph_id=graph_id)
        return run.snapshot(), True

    async def _existing_run(self, run_id: str) -> RunRecord | None:
        active = self.runs.get(run_id)
        return active.snapshot() if active is not None else await self.store.get_run(run_id)

    async def cancel_run(self, run_id: str) -> RunRecord:
        """Cancel an unfinished run; its state stays readable. Returns the run once the cancel is durable."""
        run = self.runs.get(run_id)
        if run is None:
            record = await self.get_run(run_id)
            raise RunFinished(run_id, record.status)
        committed = asyncio.get_running_loop().create_future()
        self._apply(run, run.cancel(utcnow()), then=lambda: committed.done() or committed.set_result(None))
        await committed
        log.info("run_cancelled", run_id=run_id)
        return run.snapshot()

    async def get_run(self, run_id: str) -> RunRecord:
        record = await self.store.get_run(run_id)
        if record is None:
            raise UnknownRun(run_id)
        return record

    async def list_runs(self, *, status: str | None, graph_id: str | None, limit: int) -> list[RunRecord]:
        if status is not None and status not in RunStatus.__members__.values():
            raise RequestError(f"unknown status {status!r}; expected one of {[s.value for s in RunStatus]}")
        return await self.store.list_runs(status=status, graph_id=graph_id, limit=limit)

    async def steps(self, run_id: str) -> list[StepRecord]:
        await self.get_run(run_id)
        return await self.store.steps(run_id)

    def describe_graphs(self) -> list[dict[str, Any]]:
        return [
            {**graph.describe(), "version": self.graph_versions.get(name)}
            for name, graph in sorted(self.graphs.items())
        ]

    def describe_workers(self) -> list[dict[str, Any]]:
        return [w.describe() for w in self.pool]

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok" if self._accepting else "stopping",
            "coordinator_id": self.coordinator_id,
            "workers": len(self.pool),
            "free_slots": self.pool.free_slots,
            "active_runs": len(self.runs),
            "queued_jobs": len(self.dispatcher.queue) if self.dispatcher else 0,
            "store_backlog": self.store.backlog,
        }

    async def events_after(self, run_id: str, seq: int) -> list[EventRecord]:
        return await self.store.events_after(run_id, seq)

    def subscribe(self, run_id: str) -> Subscription:
        return self.bus.subscribe(run_id)

    # -- executing the state machine's instructions -----------------------------------

    def _apply(self, run: Run, out: Instructions, then: Any = None) -> None:
        """Persist ``out.records``; once committed, publish the events and dispatch the next job."""
        if out.finished:
            self.runs.pop(run.run_id, None)
        events = [r for r in out.records if isinstance(r, EventRecord)]
        jobs, delay, cancels = out.dispatch, out.dispatch_delay, out.cancel
        dispatcher = self.dispatcher
        assert dispatcher is not None

        def after_commit() -> None:
            self.bus.publish(events)
            for job in jobs:
                if delay > 0:
                    asyncio.get_running_loop().call_later(delay, dispatcher.submit, job)
                else:
                    dispatcher.submit(job)
            for job in cancels:
                dispatcher.cancel(job)
            if then is not None:
                then()

        self.store.submit(out.records, on_commit=after_commit)

    # -- DispatchOwner: called by the dispatcher ----------------------------------------

    def job_input(self, job: JobSpec) -> tuple[dict[str, Any], bool] | None:
        run = self.runs.get(job.run_id)
        if run is None or not run.wants(job):
            return None
        return run.job_input(job)

    def job_sent(self, job: JobSpec, worker: WorkerInfo) -> None:
        run = self.runs.get(job.run_id)
        if run is not None:
            self._apply(run, run.job_sent(job, worker.worker_id, utcnow()))

    def job_lost(self, job: JobSpec, worker: WorkerInfo, reason: str, started_at: str) -> None:
        run = self.runs.get(job.run_id)
        if run is not None and run.in_flight.get(job.branch) == job:
            out = run.job_lost(job, worker_id=worker.worker_id, reason=reason, started_at=started_at, now=utcnow())
            self._apply(run, out)

    # -- messages from workers ------------------------------------------------------------

    async def _recv_loop(self) -> None:
        assert self.endpoint is not None and self.dispatcher is not None
        while True:
            identity, message = await self.endpoint.recv()
            try:
                await self._handle(identity, message)
            except Exception:
                log.exception("message_handler_failed", kind=message.kind)

    async def _handle(self, identity: bytes, message: Message) -> None:
        if isinstance(message, Hello):
            await self._on_hello(identity, message)
            return
        worker = self.pool.get(identity)
        if worker is None:
            if isinstance(message, (JobDone, JobFailed)):
                self._early_results.append((identity, message))
            log.info("unknown_worker", peer=identity.decode(errors="replace"), kind=message.kind)
            await self.endpoint.send(identity, Rejoin(self.coordinator_id))  # type: ignore[union-attr]
            return
        self.pool.seen(worker)
        handler = self._handlers.get(type(message))
        if handler is None:
            log.warning("message_dropped", worker=worker.worker_id, kind=message.kind, reason="not for the coordinator")
            return
        handler(worker, message)

    async def _on_hello(self, identity: bytes, msg: Hello) -> None:
        """Register the worker, then take the results it sent before we knew it.

        A worker that finished a job while the previous coordinator was down sends the result to
        us before its ``Hello``. The job is ours to wait for again (the same id, resumed from the
        store), so the result is as good as if we had sent the job: the dispatcher adopts those
        jobs with the ones still running, and the results are then handled as usual.
        """
        early = [m for peer, m in self._early_results if peer == identity]
        if early:
            self._early_results = deque(
                ((p, m) for p, m in self._early_results if p != identity), maxlen=EARLY_RESULTS_KEPT
            )
        await self.dispatcher.on_hello(identity, msg, finished=[m.job_id for m in early])  # type: ignore[union-attr]
        worker = self.pool.get(identity)
        for result in early:
            if worker is not None:
                self._handlers[type(result)](worker, result)

    def _on_heartbeat(self, worker: WorkerInfo, msg: Heartbeat) -> None:
        self.dispatcher.on_heartbeat(worker, msg)  # type: ignore[union-attr]

    def _on_goodbye(self, worker: WorkerInfo, msg: Goodbye) -> None:
        self.dispatcher.on_goodbye(worker, msg)  # type: ignore[union-attr]

    def _claim(self, worker: WorkerInfo, job_id: str, run_id: str) -> tuple[Run, Assignment] | None:
        """The run and assignment a result answers; None (logged) for a result nobody waits for."""
        assignment = self.dispatcher.finish(worker, job_id)  # type: ignore[union-attr]
        run = self.runs.get(run_id)
        if assignment is None or run is None or run.in_flight.get(assignment.job.branch) != assignment.job:
            log.warning("stale_result_ignored", run_id=run_id, job_id=job_id, worker=worker.worker_id)
            return None
        return run, assignment

    def _on_job_done(self, worker: WorkerInfo, msg: JobDone) -> None:
        if (claimed := self._claim(worker, msg.job_id, msg.run_id)) is None:
            return
        run, assignment = claimed
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
        self._apply(run, out)
        if out.finished:
            log.info("run_finished", run_id=run.run_id, status=run.status.value, steps=run.step_count)

    def _on_job_failed(self, worker: WorkerInfo, msg: JobFailed) -> None:
        if (claimed := self._claim(worker, msg.job_id, msg.run_id)) is None:
            return
        run, assignment = claimed
        out = run.job_failed(
            assignment.job,
            worker_id=worker.worker_id,
            error=msg.error,
            started_at=assignment.started_at,
            now=utcnow(),
            duration_ms=msg.duration_ms,
            retryable=msg.retryable,
        )
        self._apply(run, out)
        if out.finished:
            log.info(
                "run_finished",
                run_id=run.run_id,
                status=run.status.value,
                node=assignment.job.node,
                error=msg.error.get("message"),
            )

    def _on_node_log(self, worker: WorkerInfo, msg: NodeLog) -> None:
        run = self.runs.get(msg.run_id)
        if run is None:
            return
        level = msg.level if msg.level in ("debug", "info", "warning", "error", "critical") else "info"
        out = run.node_log(
            node=msg.node, worker_id=worker.worker_id, level=level, event=msg.event, fields=msg.fields, now=utcnow()
        )
        self._apply(run, out)

    def _fingerprint(self, graph_id: str) -> str | None:
        graph = self.graphs.get(graph_id)
        return graph.fingerprint if graph is not None else None
