"""The runs in progress, and the one place their state machines' instructions are carried out.

Every fact about a run (a request, a worker's result, a lost worker) reaches
its :class:`~awe.coordinator.run_machine.Run`, which answers with
:class:`~awe.coordinator.plan.Instructions`. :meth:`ActiveRuns.apply` carries
them out in the order that makes them durable: the records go to the store,
and only once they are committed are the events published and the next jobs
dispatched. Records the store refuses (a value it cannot write) fail their
run with the reason, so one bad run never holds up the others.

``ActiveRuns`` also answers the dispatcher's questions about jobs (is it
still wanted, what does it run on) and hears from it when a job was sent,
lost, or could not be sent.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import structlog

from awe.coordinator.dispatcher import Dispatcher
from awe.coordinator.events import EventBus
from awe.coordinator.graph_registry import GraphRegistry
from awe.coordinator.metrics import Metrics
from awe.coordinator.plan import Instructions, JobInput, JobSpec
from awe.coordinator.run_machine import Run
from awe.coordinator.worker_pool import Needs, WorkerInfo, WorkerPool
from awe.graph import CompiledGraph
from awe.store import EventRecord, RunRecord, WorkerPresence, utcnow
from awe.store.sqlite import Store
from awe.transport import RECONNECT_MAX_S, RouterEndpoint

log = structlog.get_logger("awe.coordinator")


class RecordsRefused(RuntimeError):
    """The store could not write a run's records; the run has been failed with the reason."""


class ActiveRuns:
    def __init__(
        self,
        *,
        graphs: GraphRegistry,
        store: Store,
        bus: EventBus,
        endpoint: RouterEndpoint,
        pool: WorkerPool,
        coordinator_id: str,
        metrics: Metrics | None = None,
        max_state_bytes: int | None = None,
        max_events_per_run: int | None = None,
    ) -> None:
        self.graphs = graphs
        self.max_state_bytes = max_state_bytes
        self.max_events_per_run = max_events_per_run
        self.store = store
        self.bus = bus
        self.runs: dict[str, Run] = {}
        self._per_graph: Counter[str] = Counter()
        self.metrics = metrics
        self._waiters: dict[str, list[asyncio.Future[RunRecord]]] = {}
        self.dispatcher = Dispatcher(endpoint, pool, self, coordinator_id=coordinator_id)

    def __len__(self) -> int:
        return len(self.runs)

    def get(self, run_id: str) -> Run | None:
        return self.runs.get(run_id)

    def add(self, run: Run) -> None:
        """Take charge of ``run``, under the engine's limits (a limit set later applies to recovered runs too)."""
        run.max_state_bytes = self.max_state_bytes
        run.max_events = self.max_events_per_run
        if run.run_id not in self.runs:
            self._per_graph[run.graph.name] += 1
        self.runs[run.run_id] = run

    def _remove(self, run_id: str) -> None:
        run = self.runs.pop(run_id, None)
        if run is not None:
            self._per_graph[run.graph.name] -= 1

    def of_graph(self, graph_id: str) -> int:
        """How many runs of ``graph_id`` are in progress: counted as they come and go, since it is asked
        at every submission and thousands of runs may be waiting."""
        return self._per_graph[graph_id]

    # -- carrying out instructions --------------------------------------------------------

    def apply(self, run: Run, out: Instructions, committed: asyncio.Future[None] | None = None) -> None:
        """Persist ``out.records``; once committed, publish the events and dispatch the next jobs.

        ``committed`` (if given) is resolved when the records are durable, or fails with
        :class:`RecordsRefused` if the store could not write them.
        """
        if out.finished:
            self._remove(run.run_id)
            self.dispatcher.copies.forget_run(run.run_id)
        events = [r for r in out.records if isinstance(r, EventRecord)]
        final = run.snapshot() if out.finished else None

        def after_commit() -> None:
            if self.metrics is not None:
                self.metrics.committed(run.graph.name, out.records)
            self.bus.publish(events)
            self._dispatch(out)
            if committed is not None and not committed.done():
                committed.set_result(None)
            if final is not None:
                self._tell_waiters(final)

        def refused(error: BaseException) -> None:
            self._records_refused(run, error)
            if committed is not None and not committed.done():
                committed.set_exception(RecordsRefused(f"run {run.run_id!r} could not be stored: {error}"))

        self.store.submit(out.records, on_commit=after_commit, on_error=refused, may_wait=out.may_wait)

    def finished(self, run_id: str) -> asyncio.Future[RunRecord]:
        """Resolved with the run's final record once its end is durable (for ``"wait": true``)."""
        future: asyncio.Future[RunRecord] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(run_id, []).append(future)
        return future

    def forget_waiter(self, run_id: str, future: asyncio.Future[RunRecord]) -> None:
        waiters = self._waiters.get(run_id, [])
        if future in waiters:
            waiters.remove(future)
        if not waiters:
            self._waiters.pop(run_id, None)

    def _tell_waiters(self, final: RunRecord) -> None:
        for future in self._waiters.pop(final.run_id, []):
            if not future.done():
                future.set_result(final)

    async def apply_and_wait(self, run: Run, out: Instructions) -> None:
        """:meth:`apply`, returning once the records are durable (for answers given to a client)."""
        committed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.apply(run, out, committed)
        await committed

    def _dispatch(self, out: Instructions) -> None:
        dispatcher = self.dispatcher
        for job in out.dispatch:
            if out.dispatch_delay > 0:
                asyncio.get_running_loop().call_later(out.dispatch_delay, dispatcher.submit, job)
            else:
                dispatcher.submit(job)
        for job in out.cancel:
            dispatcher.cancel(job)

    def _records_refused(self, run: Run, error: BaseException) -> None:
        log.error("run_records_refused", run_id=run.run_id, error=f"{type(error).__name__}: {error}")
        if run.is_finished:
            return  # its final records were refused: nothing more can be written for it
        self.fail(run, {"type": "StoreRefused", "message": f"the run's records could not be stored: {error}"})

    def fail(self, run: Run, error: dict[str, Any]) -> None:
        """End ``run`` as failed for a reason outside its graph (its records or its job were unusable)."""
        self.apply(run, run.fail(error, utcnow()))
        log.warning("run_failed_by_engine", run_id=run.run_id, error=error.get("message"))

    # -- runs a previous coordinator left unfinished --------------------------------------

    async def recover(self, *, heartbeat_interval: float, liveness: int) -> None:
        """Pick up, from their last committed step, the runs a previous coordinator left unfinished."""
        held: list[JobSpec] = []
        for record in await self.store.unfinished_runs():
            version = self.graphs.get(record.graph_id, record.graph_version)
            if version is None:
                log.warning(
                    "run_not_recovered",
                    run_id=record.run_id,
                    graph_id=record.graph_id,
                    reason="its graph version is not loaded",
                )
                continue
            try:
                held.extend(await self._recover_one(record, version.graph))
            except Exception as exc:  # one run's unreadable plan must not keep the others (or the API) down
                log.exception("run_not_recovered", run_id=record.run_id, reason="its stored plan cannot go on")
                self._fail_unrecoverable(record, version.graph, exc)
        # A job may still be running on a worker, even for a run still recorded as queued (a job is
        # sent before its send is durable). That worker reconnects and says Hello at once (or when its
        # next heartbeat gets a Rejoin, or its own liveness check fires), and keeps the job.
        grace = RECONNECT_MAX_S + heartbeat_interval * liveness
        present = set(await self.store.present_workers())
        self.dispatcher.hold(held, until_hello_from=present, seconds=grace)

    async def _recover_one(self, record: RunRecord, graph: CompiledGraph) -> list[JobSpec]:
        """Load one run where its last commit left it; the jobs it waits for, to be held (see ``recover``)."""
        run = Run(
            graph=graph,
            graph_version=record.graph_version,
            record=record,
            last_seq=await self.store.last_seq(record.run_id),
            finished_branches=await self.store.steps(record.run_id, step=record.step_count + 1),
        )
        self.add(run)
        out = run.recover(utcnow())
        jobs, out.dispatch = out.dispatch, []
        self.apply(run, out)
        return jobs

    def _fail_unrecoverable(self, record: RunRecord, graph: CompiledGraph, error: Exception) -> None:
        """End a run whose stored plan cannot go on, saying why, so that no restart trips on it again."""
        self._remove(record.run_id)
        reason = {"type": "NotRecoverable", "message": f"the run could not be resumed after a restart: {error!r}"}
        try:
            run = Run(graph=graph, graph_version=record.graph_version, record=record)
            self.add(run)
            self.apply(run, run.fail(reason, utcnow()))
        except Exception:
            self._remove(record.run_id)
            log.exception("run_left_unfinished", run_id=record.run_id, reason="it cannot even be failed")

    # -- what the dispatcher asks and tells ---------------------------------------------------

    def job_input(self, job: JobSpec) -> JobInput | None:
        run = self.runs.get(job.run_id)
        if run is None or not run.wants(job):
            return None
        return run.job_input(job)

    async def worker_joined(self, worker_id: str) -> None:
        await self.store.write([WorkerPresence(worker_id, joined_at=utcnow())])

    def workers_left(self, worker_ids: list[str]) -> None:
        now = utcnow()
        self.store.submit([WorkerPresence(worker_id, joined_at=now, left_at=now) for worker_id in worker_ids])

    def running_job_input(self, job: JobSpec) -> JobInput | None:
        run = self.runs.get(job.run_id)
        if run is None or run.in_flight.get(job.branch) != job:
            return None
        return run.job_input(job)

    def job_sent(self, job: JobSpec, worker: WorkerInfo) -> None:
        run = self.runs.get(job.run_id)
        if run is not None:
            self.apply(run, run.job_sent(job, worker.worker_id, utcnow()))

    def job_lost(self, job: JobSpec, worker: WorkerInfo, reason: str, started_at: str) -> None:
        run = self.runs.get(job.run_id)
        if run is not None and run.in_flight.get(job.branch) == job:
            out = run.job_lost(job, worker_id=worker.worker_id, reason=reason, started_at=started_at, now=utcnow())
            self.apply(run, out)

    def job_unsendable(self, job: JobSpec, error: BaseException) -> None:
        """The job could not be encoded or sent: the run fails with the reason rather than stall the queue."""
        run = self.runs.get(job.run_id)
        if run is not None and not run.is_finished:
            message = f"the job for node {job.node!r} could not be sent to a worker: {type(error).__name__}: {error}"
            self.fail(run, {"type": "JobNotSendable", "message": message})

    def job_needs(self, job: JobSpec) -> Needs | None:
        version = self.graphs.get(job.graph_id, job.graph_version)
        if version is None:
            return None
        spec = version.graph.nodes.get(job.node)
        is_async = spec is not None and (spec.is_async or spec.inline)  # neither holds one of the worker's threads
        if version.source == "json":
            return Needs(job.graph_id, tool=version.node_tools.get(job.node), is_async=is_async)
        return Needs(job.graph_id, fingerprint=version.graph.fingerprint, is_async=is_async)

    def job_waiting(self, job: JobSpec, reason: str) -> None:
        run = self.runs.get(job.run_id)
        if run is not None and not run.is_finished:
            self.apply(run, run.waiting(job, reason, utcnow()))
            log.info("run_waiting", run_id=run.run_id, node=job.node, reason=reason)

    def graphs_for_workers(self) -> list[dict[str, Any]]:
        return [
            {"graph_id": v.graph_id, "version": v.version, "definition": v.definition}
            for v in self.graphs.json_versions()
        ]
