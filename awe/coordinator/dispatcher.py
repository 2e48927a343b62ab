"""Moves jobs from the ready queue to workers' free slots, and notices workers that vanish.

The dispatcher knows jobs and workers, not runs: it asks its owner for a
job's input when it sends it, and tells its owner when a job was sent or lost.
A job leaves the queue only when a worker with a free slot and the same graph
fingerprint is connected, so with no workers, runs simply wait.

Jobs of runs resumed after a coordinator restart are *held* for a moment
before they are queued: a worker that was running one when the old
coordinator died reports it in its ``Hello``, and the dispatcher adopts it
there instead of running the node a second time elsewhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Set
from typing import Any, Protocol

import structlog

from awe.coordinator.job_queue import JobQueue, Line
from awe.coordinator.plan import JobInput, JobSpec
from awe.coordinator.rejoin import HelloReport, PreviousEntry, RejoinDecision, decide_rejoin
from awe.coordinator.state_copies import StateCopies, StateToSend
from awe.coordinator.worker_pool import Assignment, Needs, RunningJobs, WorkerInfo, WorkerPool
from awe.store import utcnow
from awe.tasks import BackgroundTasks
from awe.transport import Message, PeerGone, RouterEndpoint
from awe.transport.messages import CancelJob, Goodbye, Heartbeat, Hello, Job, StateMissing, Welcome

log = structlog.get_logger("awe.coordinator.dispatcher")

AFFINITY_WINDOW = 32
"""How far back in a line a free worker looks for a job whose run's state it keeps; also how many
times in a row the first job may be passed over for one (see :meth:`JobQueue.pop_preferred`)."""


class DispatchOwner(Protocol):
    """What the dispatcher needs from the coordinator."""

    def job_input(self, job: JobSpec) -> JobInput | None:
        """What ``job``'s node runs on (and the person's answer, if any); None if the job is not wanted."""

    async def worker_joined(self, worker_id: str) -> None:
        """Record, durably, that the worker is present (before it is sent any job)."""

    def workers_left(self, worker_ids: list[str]) -> None:
        """Record that these workers are gone."""

    def running_job_input(self, job: JobSpec) -> JobInput | None:
        """The input of a job already sent, to send it again (None if its run no longer waits for it)."""

    def job_sent(self, job: JobSpec, worker: WorkerInfo) -> None: ...

    def job_lost(self, job: JobSpec, worker: WorkerInfo, reason: str, started_at: str) -> None: ...

    def job_needs(self, job: JobSpec) -> Needs | None:
        """What a worker must have to run ``job``; None if its graph is unknown (it then never leaves)."""

    def job_waiting(self, job: JobSpec, reason: str) -> None:
        """No connected worker can run ``job`` (said once per job): its run says why it waits."""

    def graphs_for_workers(self) -> list[dict[str, Any]]:
        """Every JSON graph version, as ``GraphDefined``'s fields: a joining worker learns them in its Welcome."""

    def job_unsendable(self, job: JobSpec, error: BaseException) -> None:
        """The job could not be encoded: its run must fail, since sending it again would fail again."""


def _previous_entry(worker: WorkerInfo | None) -> PreviousEntry | None:
    """What :func:`~awe.coordinator.rejoin.decide_rejoin` needs to know of a worker's current entry."""
    if worker is None:
        return None
    sent = {job_id: assignment.seq for job_id, assignment in worker.running.items()}
    return PreviousEntry(pid=worker.pid, jobs_sent=worker.jobs_sent, sent=sent, orphans=frozenset(worker.orphans))


def _new_entry(identity: bytes, msg: Hello, decision: RejoinDecision) -> WorkerInfo:
    """The pool's entry for a worker that just said Hello, its orphans already holding their slots."""
    return WorkerInfo(
        worker_id=msg.worker_id,
        identity=identity,
        pid=msg.pid,
        host=msg.host,
        capacity=max(1, msg.capacity),
        async_capacity=max(0, msg.async_capacity),
        graphs=dict(msg.graphs),
        tools=frozenset(msg.tools),
        stuck=max(0, msg.stuck),
        orphans=set(decision.orphans),
        jobs_sent=decision.jobs_sent,
        keeps_states=msg.keeps_states,
    )


class Dispatcher:
    def __init__(
        self,
        endpoint: RouterEndpoint,
        pool: WorkerPool,
        owner: DispatchOwner,
        coordinator_id: str,
    ) -> None:
        self.endpoint = endpoint
        self.pool = pool
        self.owner = owner
        self.coordinator_id = coordinator_id
        self.queue = JobQueue()
        self.held: dict[str, JobSpec] = {}
        self._awaited: set[str] = set()
        """Workers connected to the previous coordinator that have not said Hello to this one."""
        self._wakeup = asyncio.Event()
        self._broken: Exception | None = None
        """What :meth:`_dispatch_now` raised (a bug), for the pump to raise: a task's death is what is watched."""
        self._paused = False
        self._tasks: list[asyncio.Task[None]] = []
        self._sending: set[asyncio.Task[None]] = set()
        self.copies = StateCopies()
        self.job_bytes_sent = 0
        self.whole_states_resent = 0

    def start(self, tasks: BackgroundTasks) -> list[asyncio.Task[None]]:
        """Start sending jobs and watching workers, as tasks of the process that must not die quietly."""
        return [
            tasks.spawn(self._pump_loop(), name="dispatch-pump"),
            tasks.spawn(self._sweep_loop(), name="worker-sweep"),
        ]

    def pause(self) -> None:
        """Send no more jobs (a stopping coordinator); results still arrive and queued jobs stay queued."""
        self._paused = True

    @property
    def in_flight(self) -> int:
        return sum(len(worker.running) for worker in self.pool)

    # -- the queue ---------------------------------------------------------------

    def submit(self, job: JobSpec) -> None:
        needs = self.owner.job_needs(job)
        if needs is None:  # no graph version for it is loaded: nothing could ever run it
            log.error("job_not_queued", job_id=job.job_id, reason=f"graph {job.graph_id!r} is not loaded")
            return
        self.queue.append(job, needs)
        try:
            self._dispatch_now()
        except Exception as exc:  # a bug in dispatching: the pump dies of it, as loudly as if it had met it
            self._broken = exc
            self._wakeup.set()

    def hold(self, jobs: list[JobSpec], *, until_hello_from: set[str], seconds: float) -> None:
        """Queue ``jobs`` once every worker in ``until_hello_from`` has said Hello, or after ``seconds``.

        Those are the workers that were connected when the previous coordinator stopped: one may be
        running a job of ``jobs``, and reports it in its Hello, which adopts the job instead of running
        it a second time. A worker not back within ``seconds`` is recorded as gone.
        """
        self.held.update((job.job_id, job) for job in jobs)
        self._awaited = set(until_hello_from)
        if not self._awaited:
            self._release_held()
            return
        log.info("jobs_held", jobs=len(jobs), until_hello_from=sorted(self._awaited), seconds=seconds)
        asyncio.get_running_loop().call_later(seconds, self._hold_expired)

    def _hold_expired(self) -> None:
        if self._awaited:
            log.warning("workers_not_back", workers=sorted(self._awaited))
            self.owner.workers_left(sorted(self._awaited))
            self._awaited = set()
        self._release_held()

    def _heard_from(self, worker_id: str) -> None:
        if worker_id in self._awaited:
            self._awaited.discard(worker_id)
            if not self._awaited:
                log.info("workers_back", held_jobs=len(self.held))
                self._release_held()

    def _release_held(self) -> None:
        held, self.held = self.held, {}
        for job in held.values():
            self.submit(job)

    def _unqueue(self, job_id: str) -> JobSpec | None:
        """Take a job that is waiting (held or queued) out of line."""
        job = self.held.pop(job_id, None)
        return job if job is not None else self.queue.remove(job_id)

    def _take_next(self) -> tuple[JobSpec, WorkerInfo, Needs] | None:
        """The first queued job that some free worker can run, with that worker and what the job needs."""
        if self._paused or (self.pool.free_slots <= 0 and self.pool.free_async_slots <= 0):
            return None
        for line in self.queue.lines():  # one question to the pool per kind of job, not per job
            worker = self.pool.pick(line.needs)
            if worker is not None:
                return self._pop_for(line, worker), worker, line.needs
            if not self.pool.anyone_meets(line.needs):
                for job in line.untold():
                    self.owner.job_waiting(job, f"no connected worker has {line.needs.describe()}")
        return None

    def _pop_for(self, line: Line, worker: WorkerInfo) -> JobSpec:
        """The line's next job for ``worker``: one of a run whose state it keeps, if one is near the front,
        else one whose state no other worker keeps (see :meth:`StateCopies.rank`).

        The worker was chosen for its free slot, so which worker works is unchanged (parallel
        branches still spread over processes); only the job it gets may be one a little further
        back, whose state it already has, or a new run's, whose whole state goes to some worker
        anyway. A run's jobs then stay with one worker under load, and a large state crosses the
        wire once rather than once per worker.
        """
        if not worker.keeps_states:
            return self.queue.pop(line)
        identity = worker.identity
        return self.queue.pop_preferred(
            line, lambda job: self.copies.rank(job.run_id, identity), window=AFFINITY_WINDOW
        )

    async def _pump_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if self._broken is not None:
                raise self._broken
            while (taken := self._take_next()) is not None:
                await self._send_job(*taken)

    def _dispatch_now(self) -> None:
        """Send the jobs that can go at once in this turn of the loop; the pump sends the rest.

        A job queued by a commit's callback (a run's next step) then leaves before the loop turns
        again, rather than on the pump's next turn: one turn less in every step's round trip.
        """
        while (taken := self._take_next()) is not None:
            job, worker, needs = taken
            frame = self._assign(job, worker, needs)
            if frame is None:
                continue
            try:
                sent = self.endpoint.send_frame_now(worker.identity, frame)
            except PeerGone:
                self._unreachable(job, worker, needs)
                continue
            if not sent:  # no room, or a send already waits for it: the pump waits, in order
                self._unassign(job, worker, needs, frame)
                self._wakeup.set()
                return
            self._sent(job, worker)

    async def _send_job(self, job: JobSpec, worker: WorkerInfo, needs: Needs) -> None:
        frame = self._assign(job, worker, needs)
        if frame is not None:
            await self._send_assigned(job, worker, needs, frame)

    def _assign(self, job: JobSpec, worker: WorkerInfo, needs: Needs) -> bytes | None:
        """The job's frame, its slot on ``worker`` taken; None if its run no longer wants it."""
        frame = self._job_frame(job, worker, self.owner.job_input(job))
        if frame is not None:  # sends to a worker are one at a time (the pump awaits each), so this is its number
            worker.running[job.job_id] = Assignment(job, utcnow(), seq=worker.jobs_sent + 1, is_async=needs.is_async)
        return frame

    def _unassign(self, job: JobSpec, worker: WorkerInfo, needs: Needs, frame: bytes) -> None:
        """Undo :meth:`_assign` for a frame that was not sent: the job goes back to the front of its line."""
        del worker.running[job.job_id]
        self.copies.forget(job.run_id, worker.identity)  # the copy the frame assumed it would keep
        self.job_bytes_sent -= len(frame)
        self.queue.appendleft(job, needs)

    async def _send_assigned(self, job: JobSpec, worker: WorkerInfo, needs: Needs, frame: bytes) -> None:
        try:
            await self.endpoint.send_frame(worker.identity, frame)
        except PeerGone:
            self._unreachable(job, worker, needs)
            return
        self._sent(job, worker)

    def _unreachable(self, job: JobSpec, worker: WorkerInfo, needs: Needs) -> None:
        """The job never reached anyone: it goes back to the front, not through a "lost" attempt."""
        worker.running.pop(job.job_id, None)
        self.queue.appendleft(job, needs)
        self.drop_worker(worker, reason="unreachable")

    def _sent(self, job: JobSpec, worker: WorkerInfo) -> None:
        worker.jobs_sent += 1
        self.owner.job_sent(job, worker)

    def _job_frame(self, job: JobSpec, worker: WorkerInfo, given: JobInput | None) -> bytes | None:
        """The encoded ``Job`` for ``worker``: None if its run no longer wants it or it cannot be encoded."""
        if given is None:
            return None
        if given.from_send or not worker.keeps_states:
            state = StateToSend(given.state)
        else:
            state = self.copies.to_send(job.run_id, worker.identity, given.state)
        message = Job(
            job_id=job.job_id,
            run_id=job.run_id,
            graph_id=job.graph_id,
            node=job.node,
            step=job.step,
            attempt=job.attempt,
            state=state.state,
            branch=job.branch,
            from_send=given.from_send,
            graph_version=job.graph_version,
            answer=given.answer,
            base=state.base,
            removed=state.removed,
            version=state.version,
            ended=self.copies.take_ended(worker.identity),
        )
        try:
            frame = self.endpoint.encode(message)  # FrameTooLarge too: the worker would refuse it
        except Exception as exc:  # a value no check caught: this run fails, the others go on
            log.error("job_not_encodable", job_id=job.job_id, error=repr(exc))
            self.copies.forget(job.run_id, worker.identity)
            self.owner.job_unsendable(job, exc)
            return None
        self.job_bytes_sent += len(frame)
        return frame

    def on_state_missing(self, worker: WorkerInfo, msg: StateMissing) -> None:
        task = asyncio.get_running_loop().create_task(self.send_whole_state(worker, msg.job_id))
        self._sending.add(task)  # keep a reference until it is sent
        task.add_done_callback(self._send_ended)

    async def send_whole_state(self, worker: WorkerInfo, job_id: str) -> None:
        """The worker lacks the copy a job's ``base`` named: send the job again, with the whole state.

        The job keeps its slot and its attempt: it never started.
        """
        assignment = worker.running.get(job_id)
        if assignment is None:
            log.warning("state_missing_ignored", worker=worker.worker_id, job_id=job_id, reason="not running there")
            return
        self.copies.forget(assignment.job.run_id, worker.identity)
        frame = self._job_frame(assignment.job, worker, self.owner.running_job_input(assignment.job))
        if frame is None:  # its run went on without it (cancelled, for one): the slot is free again
            worker.running.take(job_id)
            self._wakeup.set()
            return
        self.whole_states_resent += 1
        try:
            await self.endpoint.send_frame(worker.identity, frame)
        except PeerGone:
            self.drop_worker(worker, reason="unreachable")

    def cancel(self, job: JobSpec) -> None:
        """Ask the worker running ``job`` to stop it; its slot frees when the worker answers."""
        for worker in self.pool:
            if job.job_id in worker.running:
                task = asyncio.get_running_loop().create_task(self._send(worker, CancelJob(job.job_id)))
                self._sending.add(task)  # keep a reference until it is sent
                task.add_done_callback(self._send_ended)
                return

    # -- workers -------------------------------------------------------------------

    async def on_hello(self, identity: bytes, msg: Hello, finished: list[str] | tuple[str, ...] = ()) -> None:
        """Register a worker: settle what its previous entry held, adopt or cancel the jobs it reports.

        ``finished``: jobs it reported results for before this Hello (the caller handles those results
        next). :func:`~awe.coordinator.rejoin.decide_rejoin` decides; this carries the decision out. The
        new entry is complete, every job the worker has counted in its slots, before it joins the pool
        and before the first await: the pump runs during our sends and must not see slots that the
        worker's reported jobs hold.
        """
        await self.owner.worker_joined(msg.worker_id)  # first: no job goes to a worker not known to be there
        report = HelloReport(
            pid=msg.pid, running=tuple(msg.running), jobs_received=msg.jobs_received, finished=tuple(finished)
        )
        previous = self.pool.get(identity)
        self.copies.forget_worker(identity)  # perhaps a new process, which keeps nothing yet
        waiting = self._waiting_jobs(report.reported_ids)
        decision = decide_rejoin(_previous_entry(previous), report, awaited=waiting.keys())
        worker = _new_entry(identity, msg, decision)
        if previous is not None:
            self._carry_over(previous, worker, decision)
        self.pool.add(worker)
        self._adopt(worker, decision.adopted, waiting)
        log.info(
            "worker_joined",
            worker=msg.worker_id,
            pid=msg.pid,
            host=msg.host,
            capacity=msg.capacity,
            graphs=sorted(msg.graphs),
            running=len(report.running_ids),
            kept=len(decision.kept),
            lost=len(decision.lost),
            adopted=len(decision.adopted),
            orphans=len(decision.orphans),
        )
        welcome = Welcome(
            self.coordinator_id, self.pool.heartbeat_interval, graphs=self.owner.graphs_for_workers(), batches=True
        )
        await self._send(worker, welcome)
        await self._cancel_orphans(worker, decision.cancel)
        self._heard_from(msg.worker_id)
        self._wakeup.set()

    def _waiting_jobs(self, job_ids: Set[str]) -> dict[str, JobSpec]:
        """The jobs among ``job_ids`` that wait in line (held or queued) and that their runs still want."""
        if not job_ids:
            return {}
        in_line = {job.job_id: job for job in self.queue} | self.held
        return {
            job_id: job
            for job_id in job_ids
            if (job := in_line.get(job_id)) is not None and self.owner.job_input(job) is not None
        }

    def _carry_over(self, previous: WorkerInfo, worker: WorkerInfo, decision: RejoinDecision) -> None:
        """Move the jobs the worker still has to its new entry; report the others lost, so they run again."""
        for job_id in decision.kept:
            worker.running[job_id] = previous.running[job_id]
        for lost in decision.lost:
            assignment = previous.running[lost.job_id]
            self.owner.job_lost(assignment.job, previous, lost.reason, assignment.started_at)

    def _adopt(self, worker: WorkerInfo, job_ids: tuple[str, ...], waiting: dict[str, JobSpec]) -> None:
        """Take jobs the worker runs (or just finished) out of line, as if we had sent them to it."""
        for job_id in job_ids:
            job = waiting[job_id]
            self._unqueue(job_id)
            needs = self.owner.job_needs(job)
            worker.running[job_id] = Assignment(job, utcnow(), is_async=needs is not None and needs.is_async)
            self.owner.job_sent(job, worker)
            log.info("job_adopted", worker=worker.worker_id, job_id=job_id)

    async def _cancel_orphans(self, worker: WorkerInfo, job_ids: tuple[str, ...]) -> None:
        """Ask the worker to stop jobs nobody waits for; their slots stay counted until it reports them ended."""
        for job_id in job_ids:
            if self.pool.get(worker.identity) is not worker:
                return  # dropped as unreachable: its next Hello reports these jobs again
            log.info("orphan_job_cancelled", worker=worker.worker_id, job_id=job_id)
            await self._send(worker, CancelJob(job_id))

    def on_heartbeat(self, worker: WorkerInfo, msg: Heartbeat) -> None:
        worker.last_heartbeat_at = utcnow()
        stuck = max(0, msg.stuck)
        if stuck != worker.stuck:
            log.info("worker_stuck_slots", worker=worker.worker_id, stuck=stuck, capacity=worker.capacity)
            worker.stuck = stuck
            self._wakeup.set()
        self._check_running_count(worker, msg.running)

    def _check_running_count(self, worker: WorkerInfo, running_count: int) -> None:
        """Free orphan slots the worker's count proves empty; warn if it runs more than we account for.

        The count lags: a job on its way is not in it yet, and a result right behind the heartbeat ends
        one that is. So it only bounds the orphans from above (every orphan still running is in it) and
        never stands in for our assignments. A count above everything we account for is a bookkeeping
        bug, like the one that over-filled workers after a coordinator restart: the warning shows it;
        acting on it would need lag rules of its own.
        """
        if worker.bound_orphans(running_count):
            log.info("orphan_slots_freed", worker=worker.worker_id, running=running_count, orphans=len(worker.orphans))
            self._wakeup.set()
        accounted = len(worker.running) + len(worker.orphans)
        if running_count > accounted:
            log.warning(
                "worker_runs_unaccounted_jobs", worker=worker.worker_id, running=running_count, accounted=accounted
            )

    def on_goodbye(self, worker: WorkerInfo, msg: Goodbye) -> None:
        self.drop_worker(worker, reason="worker left")

    def finish(self, worker: WorkerInfo, job_id: str) -> Assignment | None:
        """Free the slot of a reported job; None if this worker was not running it for us (a stale result).

        A stale result still frees a slot when it ends an orphan (a job we asked the worker to stop):
        the caller must call this for every result from a known worker, stale or not.
        """
        assignment = worker.running.take(job_id)
        if assignment is not None:
            worker.jobs_done += 1
        if assignment is not None or worker.orphan_ended(job_id):
            self._wakeup.set()
        return assignment

    def drop_worker(self, worker: WorkerInfo, *, reason: str) -> None:
        if self.pool.get(worker.identity) is worker:
            self.pool.remove(worker.identity)
            self.copies.forget_worker(worker.identity)
            self.owner.workers_left([worker.worker_id])
        log.warning(
            "worker_lost" if worker.running else "worker_left",
            worker=worker.worker_id,
            reason=reason,
            jobs=len(worker.running),
        )
        running, worker.running = worker.running, RunningJobs()
        for assignment in running.values():
            self.owner.job_lost(assignment.job, worker, reason, assignment.started_at)
        self._wakeup.set()

    async def tell_every_worker(self, message: Message) -> None:
        """Send ``message`` to every connected worker (a new JSON graph, for instance)."""
        for worker in self.pool:
            await self._send(worker, message)

    def _send_ended(self, task: asyncio.Task[None]) -> None:
        """A send made in a task of its own: nobody awaits it, so a failure is logged here."""
        self._sending.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("send_failed", task=task.get_name(), error=repr(error))

    async def _send(self, worker: WorkerInfo, message: Any) -> None:
        try:
            await self.endpoint.send(worker.identity, message)
        except PeerGone:
            self.drop_worker(worker, reason="unreachable")

    async def _sweep_loop(self) -> None:
        """Heartbeat every worker and drop the ones that have gone silent."""
        beat = Heartbeat(sender=self.coordinator_id)
        while True:
            await asyncio.sleep(self.pool.heartbeat_interval)
            for worker in self.pool.expired():
                self.drop_worker(
                    worker, reason=f"no heartbeat for {self.pool.heartbeat_interval * self.pool.liveness:g}s"
                )
            for worker in self.pool:
                beat.running = len(worker.running)
                await self._send(worker, beat)
