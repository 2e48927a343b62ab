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
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from awe.coordinator.plan import JobSpec
from awe.coordinator.worker_pool import Assignment, WorkerInfo, WorkerPool
from awe.store import utcnow
from awe.transport import PeerGone, RouterEndpoint
from awe.transport.messages import CancelJob, Goodbye, Heartbeat, Hello, Job, Welcome

log = structlog.get_logger("awe.coordinator.dispatcher")


class DispatchOwner(Protocol):
    """What the dispatcher needs from the coordinator."""

    def job_input(self, job: JobSpec) -> tuple[dict[str, Any], bool] | None:
        """What ``job``'s node runs on and whether it is a Send's payload; None if the job is not wanted."""

    def job_sent(self, job: JobSpec, worker: WorkerInfo) -> None: ...

    def job_lost(self, job: JobSpec, worker: WorkerInfo, reason: str, started_at: str) -> None: ...


class Dispatcher:
    def __init__(
        self,
        endpoint: RouterEndpoint,
        pool: WorkerPool,
        owner: DispatchOwner,
        fingerprints: Callable[[str], str | None],
        coordinator_id: str,
    ) -> None:
        self.endpoint = endpoint
        self.pool = pool
        self.owner = owner
        self.fingerprints = fingerprints
        self.coordinator_id = coordinator_id
        self.queue: deque[JobSpec] = deque()
        self.held: dict[str, JobSpec] = {}
        self._wakeup = asyncio.Event()
        self._paused = False
        self._tasks: list[asyncio.Task[None]] = []
        self._sending: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._pump_loop(), name="dispatch-pump"),
            asyncio.create_task(self._sweep_loop(), name="worker-sweep"),
        ]

    def pause(self) -> None:
        """Send no more jobs (a stopping coordinator); results still arrive and queued jobs stay queued."""
        self._paused = True

    @property
    def in_flight(self) -> int:
        return sum(len(worker.running) for worker in self.pool)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    # -- the queue ---------------------------------------------------------------

    def submit(self, job: JobSpec) -> None:
        self.queue.append(job)
        self._wakeup.set()

    def hold(self, job: JobSpec, seconds: float) -> None:
        """Queue ``job`` after ``seconds`` unless a worker reports it as already running."""
        self.held[job.job_id] = job
        asyncio.get_running_loop().call_later(seconds, self._release, job.job_id)

    def _release(self, job_id: str) -> None:
        job = self.held.pop(job_id, None)
        if job is not None:
            self.submit(job)

    def _unqueue(self, job_id: str) -> JobSpec | None:
        """Take a job that is waiting (held or queued) out of line."""
        job = self.held.pop(job_id, None)
        if job is not None:
            return job
        for index, queued in enumerate(self.queue):
            if queued.job_id == job_id:
                del self.queue[index]
                return queued
        return None

    def _take_next(self) -> tuple[JobSpec, WorkerInfo] | None:
        """The first queued job that some free worker can run, with that worker."""
        if self._paused or self.pool.free_slots <= 0:
            return None
        for index, job in enumerate(self.queue):
            fingerprint = self.fingerprints(job.graph_id)
            worker = self.pool.pick(job.graph_id, fingerprint) if fingerprint else None
            if worker is not None:
                del self.queue[index]
                return job, worker
        return None

    async def _pump_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while (taken := self._take_next()) is not None:
                job, worker = taken
                await self._send_job(job, worker)

    async def _send_job(self, job: JobSpec, worker: WorkerInfo) -> None:
        given = self.owner.job_input(job)
        if given is None:
            return
        state, from_send = given
        message = Job(
            job_id=job.job_id,
            run_id=job.run_id,
            graph_id=job.graph_id,
            node=job.node,
            step=job.step,
            attempt=job.attempt,
            state=state,
            branch=job.branch,
            from_send=from_send,
        )
        started_at = utcnow()
        worker.running[job.job_id] = Assignment(job, started_at, seq=worker.jobs_sent + 1)
        try:
            await self.endpoint.send(worker.identity, message)
        except PeerGone:
            # The job never reached anyone: it goes back to the front, not through a "lost" attempt.
            del worker.running[job.job_id]
            self.queue.appendleft(job)
            self.drop_worker(worker, reason="unreachable")
            return
        worker.jobs_sent += 1
        self.owner.job_sent(job, worker)

    def cancel(self, job: JobSpec) -> None:
        """Ask the worker running ``job`` to stop it; its slot frees when the worker answers."""
        for worker in self.pool:
            if job.job_id in worker.running:
                task = asyncio.get_running_loop().create_task(self._send(worker, CancelJob(job.job_id)))
                self._sending.add(task)  # keep a reference until it is sent
                task.add_done_callback(self._sending.discard)
                return

    # -- workers -------------------------------------------------------------------

    async def on_hello(self, identity: bytes, msg: Hello, finished: list[str] | tuple[str, ...] = ()) -> None:
        """Register a worker. ``finished``: jobs it reported results for before this Hello."""
        worker = WorkerInfo(
            worker_id=msg.worker_id,
            identity=identity,
            pid=msg.pid,
            host=msg.host,
            capacity=max(1, msg.capacity),
            graphs=dict(msg.graphs),
            stuck=max(0, msg.stuck),
            jobs_sent=max(0, msg.jobs_received),
        )
        previous = self.pool.add(worker)
        still_running = set(msg.running) | set(finished)
        if previous is not None:
            # Same identity again: a restarted worker, or one that lost us for a while (and it may say
            # Hello several times, once per Rejoin). Jobs it still runs it reports in ``running``; a
            # job sent after it counted ``jobs_received`` is still on its way to the same process;
            # everything else we had given it is gone.
            same_process = previous.pid == msg.pid
            if same_process:
                worker.jobs_sent = previous.jobs_sent
            for job_id, assignment in previous.running.items():
                if job_id in still_running or (same_process and assignment.seq > msg.jobs_received):
                    worker.running[job_id] = assignment
                else:
                    self.owner.job_lost(assignment.job, previous, "worker restarted", assignment.started_at)
        log.info(
            "worker_joined",
            worker=msg.worker_id,
            pid=msg.pid,
            host=msg.host,
            capacity=msg.capacity,
            graphs=sorted(msg.graphs),
            running=len(still_running),
        )
        await self._send(worker, Welcome(self.coordinator_id, self.pool.heartbeat_interval))
        for job_id in sorted(still_running - worker.running.keys()):
            await self._adopt(worker, job_id, send_cancel=job_id not in finished)
        self._wakeup.set()

    async def _adopt(self, worker: WorkerInfo, job_id: str, *, send_cancel: bool = True) -> None:
        """A job the worker runs that we did not give it: keep it if its run waits for it, else stop it."""
        job = self._unqueue(job_id)
        if job is not None and self.owner.job_input(job) is not None:
            worker.running[job_id] = Assignment(job, utcnow())
            self.owner.job_sent(job, worker)
            log.info("job_adopted", worker=worker.worker_id, job_id=job_id)
            return
        if send_cancel:
            log.info("orphan_job_cancelled", worker=worker.worker_id, job_id=job_id)
            await self._send(worker, CancelJob(job_id))

    def on_heartbeat(self, worker: WorkerInfo, msg: Heartbeat) -> None:
        worker.last_heartbeat_at = utcnow()
        stuck = max(0, msg.stuck)
        if stuck != worker.stuck:
            log.info("worker_stuck_slots", worker=worker.worker_id, stuck=stuck, capacity=worker.capacity)
            worker.stuck = stuck
            self._wakeup.set()

    def on_goodbye(self, worker: WorkerInfo, msg: Goodbye) -> None:
        self.drop_worker(worker, reason="worker left")

    def finish(self, worker: WorkerInfo, job_id: str) -> Assignment | None:
        """Free the slot of a reported job; None if this worker was not running it (a stale result)."""
        assignment = worker.running.pop(job_id, None)
        if assignment is not None:
            worker.jobs_done += 1
            self._wakeup.set()
        return assignment

    def drop_worker(self, worker: WorkerInfo, *, reason: str) -> None:
        if self.pool.get(worker.identity) is worker:
            self.pool.remove(worker.identity)
        log.warning(
            "worker_lost" if worker.running else "worker_left",
            worker=worker.worker_id,
            reason=reason,
            jobs=len(worker.running),
        )
        running, worker.running = worker.running, {}
        for assignment in running.values():
            self.owner.job_lost(assignment.job, worker, reason, assignment.started_at)
        self._wakeup.set()

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
