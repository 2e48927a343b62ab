"""A worker process: connects to the coordinator, runs the jobs it is sent, reports back.

Life cycle: say ``Hello`` (who we are, how many jobs we take at once, which
graphs we can run), then loop: run each ``Job`` as its own task, heartbeat
every interval, and say ``Hello`` again whenever the coordinator asks
(``Rejoin``) or has been silent for ``interval * liveness`` seconds. On
SIGTERM or SIGINT, stop taking jobs, let the running ones finish for up to
``drain_timeout`` seconds, then say ``Goodbye`` so the coordinator sends the
rest elsewhere at once.

A sync node thread that outlives its timeout cannot be stopped; its slot is
*stuck* until the thread returns, and the worker reports stuck slots in its
heartbeats so the coordinator sends it fewer jobs. When every slot is stuck
the process is useless: it says goodbye and exits with ``EXIT_STUCK`` so that
its supervisor starts a fresh one.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import structlog

from awe.graph import CompiledGraph, Context
from awe.transport import DealerEndpoint
from awe.transport.messages import (
    CancelJob,
    Goodbye,
    Heartbeat,
    Hello,
    Job,
    JobFailed,
    Message,
    NodeLog,
    Rejoin,
    Welcome,
)
from awe.workers.executor import describe_error, run_job
from awe.exit_codes import EXIT_STUCK
from awe.workers.node_logger import NodeLogger

log = structlog.get_logger("awe.worker")


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Worker:
    def __init__(
        self,
        *,
        connect: str,
        graphs: dict[str, CompiledGraph],
        worker_id: str | None = None,
        capacity: int = 4,
        heartbeat_interval: float = 1.0,
        heartbeat_liveness: int = 3,
        drain_timeout: float = 10.0,
    ) -> None:
        self.connect = connect
        self.graphs = graphs
        self.worker_id = worker_id or default_worker_id()
        self.capacity = max(1, capacity)
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_liveness = heartbeat_liveness
        self.drain_timeout = drain_timeout
        self.threads = ThreadPoolExecutor(max_workers=self.capacity, thread_name_prefix="node")
        self.running: dict[str, asyncio.Task[None]] = {}
        self.abandoned: set[Future[Any]] = set()
        """Node threads still running after their attempt was given up: each holds a slot."""
        self.exit_code = 0
        self.jobs_received = 0
        self.endpoint: DealerEndpoint | None = None
        self._stopping = asyncio.Event()
        self._last_heard = time.monotonic()
        self._outbox: asyncio.Queue[Message] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle -------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until SIGTERM/SIGINT, then drain and leave."""
        self._loop = loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        self.endpoint = DealerEndpoint(self.connect, self.worker_id)
        structlog.contextvars.bind_contextvars(worker=self.worker_id)
        tasks = [
            asyncio.create_task(self._recv_loop(), name="worker-recv"),
            asyncio.create_task(self._send_loop(), name="worker-send"),
            asyncio.create_task(self._heartbeat_loop(), name="worker-heartbeat"),
        ]
        self._say_hello()
        log.info("worker_started", connect=self.connect, capacity=self.capacity, graphs=sorted(self.graphs))
        try:
            await self._stopping.wait()
            await self._drain()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.endpoint.close()
            self.threads.shutdown(wait=False, cancel_futures=True)
            log.info("worker_stopped")

    def stop(self) -> None:
        self._stopping.set()

    async def _drain(self) -> None:
        log.info("worker_draining", running=len(self.running), timeout=self.drain_timeout)
        if self.running:
            await asyncio.wait(list(self.running.values()), timeout=self.drain_timeout)
        unfinished = list(self.running)
        for task in self.running.values():
            task.cancel()
        # Say goodbye after every result already queued (the send loop keeps the order), so the
        # coordinator sees those results first and sends only the unfinished jobs elsewhere.
        self.send(Goodbye(worker_id=self.worker_id, returned=unfinished))
        try:
            await asyncio.wait_for(self._outbox.join(), timeout=self.drain_timeout)
        except TimeoutError:
            log.warning("goodbye_not_sent", queued=self._outbox.qsize())

    # -- sending ---------------------------------------------------------------------

    def send(self, message: Message) -> None:
        """Queue a message for the coordinator; safe from the event loop only."""
        self._outbox.put_nowait(message)

    async def _send_loop(self) -> None:
        while True:
            message = await self._outbox.get()
            try:
                await self.endpoint.send(message)  # type: ignore[union-attr]
            finally:
                self._outbox.task_done()

    def _say_hello(self) -> None:
        self.send(
            Hello(
                worker_id=self.worker_id,
                pid=os.getpid(),
                host=socket.gethostname(),
                capacity=self.capacity,
                graphs={name: g.fingerprint for name, g in self.graphs.items()},
                running=list(self.running),
                stuck=len(self.abandoned),
                jobs_received=self.jobs_received,
            )
        )

    def _beat(self) -> None:
        self.send(Heartbeat(sender=self.worker_id, running=len(self.running), stuck=len(self.abandoned)))

    # -- receiving -------------------------------------------------------------------

    async def _recv_loop(self) -> None:
        while True:
            message = await self.endpoint.recv()  # type: ignore[union-attr]
            self._last_heard = time.monotonic()
            if isinstance(message, Job):
                self.jobs_received += 1
                self._start_job(message)
            elif isinstance(message, CancelJob):
                task = self.running.get(message.job_id)
                if task is not None:
                    log.info("job_cancel_requested", job_id=message.job_id)
                    task.cancel()
            elif isinstance(message, Rejoin):
                log.info("rejoin_requested", coordinator=message.coordinator_id)
                self._say_hello()
            elif isinstance(message, Welcome):
                self.heartbeat_interval = message.heartbeat_interval
                log.info("worker_welcomed", coordinator=message.coordinator_id)
            elif not isinstance(message, Heartbeat):
                log.warning("message_dropped", kind=message.kind, reason="not for a worker")

    def _start_job(self, job: Job) -> None:
        if self._stopping.is_set():
            return  # returned to the coordinator by the Goodbye at the end of the drain
        if job.job_id in self.running:
            log.info("duplicate_job_ignored", job_id=job.job_id)
            return
        self.running[job.job_id] = asyncio.create_task(self._run_job(job), name=f"job-{job.job_id}")

    async def _run_job(self, job: Job) -> None:
        bound = log.bind(run_id=job.run_id, node=job.node, worker=self.worker_id, step=job.step, attempt=job.attempt)
        try:
            graph = self.graphs.get(job.graph_id)
            if graph is None:
                result: Message = JobFailed(
                    job_id=job.job_id,
                    run_id=job.run_id,
                    error=describe_error(LookupError(f"worker {self.worker_id} has no graph {job.graph_id!r}")),
                )
            else:
                ctx = Context(
                    run_id=job.run_id,
                    graph_id=job.graph_id,
                    node=job.node,
                    step=job.step,
                    attempt=job.attempt,
                    worker_id=self.worker_id,
                    branch=job.branch or job.node,
                    log=NodeLogger(bound, lambda level, event, fields: self._forward_log(job, level, event, fields)),
                )
                bound.debug("job_started")
                try:
                    result = await run_job(graph, job, ctx, self.threads, on_abandoned=self._thread_abandoned)
                except asyncio.CancelledError:
                    if self._stopping.is_set():
                        raise  # a drain that ran out of time: the Goodbye hands the job back
                    # Cancelled on request. An async node stops here; a sync node's thread cannot be
                    # interrupted and finishes in the background, its result discarded.
                    result = JobFailed(
                        job_id=job.job_id,
                        run_id=job.run_id,
                        error={"type": "JobCancelled", "message": "cancelled by the coordinator"},
                    )
            if isinstance(result, JobFailed):
                bound.info("job_failed", error=result.error.get("message"), error_type=result.error.get("type"))
            else:
                bound.debug("job_done", duration_ms=round(result.duration_ms, 3))
            self.send(result)
        finally:
            self.running.pop(job.job_id, None)

    def _thread_abandoned(self, future: Future[Any]) -> None:
        """Count the slot as stuck, and tell the coordinator before the job's result goes out."""
        self.abandoned.add(future)
        future.add_done_callback(lambda f: self._loop.call_soon_threadsafe(self._thread_returned, f))  # type: ignore[union-attr]
        log.warning("slot_stuck", stuck=len(self.abandoned), capacity=self.capacity)
        self._beat()
        if len(self.abandoned) >= self.capacity and not self._stopping.is_set():
            log.error(
                "worker_stuck",
                reason="every slot is held by a node thread past its timeout; exiting for a fresh process",
            )
            self.exit_code = EXIT_STUCK
            self._stopping.set()

    def _thread_returned(self, future: Future[Any]) -> None:
        if future in self.abandoned:
            self.abandoned.discard(future)
            log.info("slot_freed", stuck=len(self.abandoned))
            self._beat()

    def _forward_log(self, job: Job, level: str, event: str, fields: dict[str, Any]) -> None:
        """Called from the node, which may be in a thread: hand the message to the loop."""
        message = NodeLog(job_id=job.job_id, run_id=job.run_id, node=job.node, level=level, event=event, fields=fields)
        self._loop.call_soon_threadsafe(self.send, message)  # type: ignore[union-attr]

    # -- heartbeats ------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            self._beat()
            silent_for = time.monotonic() - self._last_heard
            if silent_for > self.heartbeat_interval * self.heartbeat_liveness:
                log.warning("coordinator_silent", seconds=round(silent_for, 1))
                self._last_heard = time.monotonic()  # one Hello per liveness period, not one per beat
                self._say_hello()
