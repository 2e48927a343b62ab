"""A worker process: connects to the coordinator, runs the jobs it is sent, reports back.

Life cycle: say ``Hello`` (who we are, how many jobs we take at once, which
graphs we can run), then loop: run each ``Job`` as its own task, heartbeat
every interval, and say ``Hello`` again whenever the coordinator asks
(``Rejoin``) or has been silent for ``interval * liveness`` seconds. On
SIGTERM or SIGINT, stop taking jobs, let the running ones finish for up to
``drain_timeout`` seconds, then say ``Goodbye`` so the coordinator sends the
rest elsewhere at once.

Each job writes two ``info`` lines to the worker's log file, ``job_received``
and ``job_finished`` (with ``outcome``: ``completed``, ``failed``,
``timed_out``, ``cancelled``, or ``returned``: given up unfinished as the
worker left, for the coordinator to run elsewhere). While a job runs, every line logged on its
behalf, the node's own ``ctx.log`` lines included, carries the job's
``run_id``, ``graph_id``, ``node``, ``branch``, ``step``, ``attempt`` and
``job_id``, so ``grep run_id`` on the log files finds everything about a run.

The receive, send and heartbeat loops run as :class:`~awe.tasks.BackgroundTasks`:
if one dies its traceback is logged (``background_task_died``) and the worker
leaves at once with ``EXIT_SOFTWARE``, handing its jobs back with a
``Goodbye`` if it still can, rather than staying connected while doing
nothing. A message that cannot be encoded is not such a death: the send loop
logs and drops it, and a result that cannot be encoded becomes a ``JobFailed``
that says why, so the run fails with a readable error instead of waiting forever.

A sync node thread that outlives its timeout cannot be stopped; its slot is
*stuck* until the thread returns, and the worker reports stuck slots in its
heartbeats so the coordinator sends it fewer jobs. When every slot is stuck
the process is useless: it says goodbye and exits with ``EXIT_STUCK`` so that
its supervisor starts a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import os
import signal
import socket
import time
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any

import msgpack
import structlog

from awe.exit_codes import EXIT_SOFTWARE, EXIT_STUCK
from awe.graph import CompiledGraph, Context
from awe.graph.compiled import NodeTimeout
from awe.graph.tools import registered_tools
from awe.tasks import BackgroundTasks
from awe.transport import MAX_FRAME_BYTES, MAX_MESSAGES_PER_SEND, DealerEndpoint
from awe.transport.curve import ClientKeys
from awe.transport.messages import (
    CancelJob,
    Goodbye,
    GraphDefined,
    Heartbeat,
    Hello,
    Job,
    JobDone,
    JobFailed,
    JobInterrupted,
    Message,
    NodeLog,
    Rejoin,
    StateMissing,
    Welcome,
)
from awe.workers.executor import describe_error, run_job
from awe.workers.known_graphs import KnownGraphs
from awe.workers.node_logger import NodeLogger
from awe.workers.node_threads import NodeThreads
from awe.workers.state_cache import StateCache

log = structlog.get_logger("awe.worker")

JOB_CANCELLED = "JobCancelled"
"""The error type of a job stopped by the coordinator's ``CancelJob``."""

RESULT_NOT_ENCODABLE = "ResultNotEncodable"
"""The error type of a job whose result msgpack could not encode (see :meth:`Worker._send_one`)."""

UNENCODABLE = (TypeError, ValueError, OverflowError)
"""What msgpack raises for a value it cannot pack: ``TypeError`` for a type it does not know,
``ValueError`` (``UnicodeEncodeError``) for a string holding a lone surrogate, ``OverflowError`` for
an integer outside 64 bits. ZeroMQ's own errors (``ZMQError``) are none of these."""


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def job_fields(job: Job) -> dict[str, Any]:
    """What every log line about ``job`` carries, so that one grep finds a run or a node."""
    return {
        "run_id": job.run_id,
        "graph_id": job.graph_id,
        "node": job.node,
        "branch": job.branch or job.node,
        "step": job.step,
        "attempt": job.attempt,
        "job_id": job.job_id,
    }


def outcome_fields(result: JobDone | JobFailed | JobInterrupted) -> dict[str, Any]:
    """The ``job_finished`` fields for a result: one word for grep, then the error if any."""
    if isinstance(result, JobDone):
        return {"outcome": "completed"}
    if isinstance(result, JobInterrupted):
        return {"outcome": "interrupted"}
    error_type = result.error.get("type")
    if error_type == JOB_CANCELLED:
        return {"outcome": "cancelled"}
    return {
        "outcome": "timed_out" if error_type == NodeTimeout.__name__ else "failed",
        "error_type": error_type,
        "error": result.error.get("message"),
        "retryable": result.retryable,
    }


def _packs(value: Any) -> bool:
    try:
        msgpack.packb(value, use_bin_type=True)
    except UNENCODABLE:
        return False
    return True


def find_unpackable(value: Any, path: str) -> str | None:
    """Where in ``value`` msgpack fails (``state['notes'][2]``), so the error names the culprit."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not _packs(key):
                return f"the key {key!r} of {path}"
            found = find_unpackable(item, f"{path}[{key!r}]")
            if found is not None:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = find_unpackable(item, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    return None if _packs(value) else path


def unpackable_field(message: Message) -> str:
    """The part of ``message`` that cannot be encoded, in a node author's words where possible."""
    for f in dataclasses.fields(message):
        found = find_unpackable(getattr(message, f.name), "state" if f.name == "delta" else f.name)
        if found is not None:
            return found
    return "the message"


def _printable(text: str) -> str:
    """``text`` with lone surrogates escaped: an error message about them must itself be sendable."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class Worker:
    def __init__(
        self,
        *,
        connect: str,
        graphs: dict[str, CompiledGraph],
        worker_id: str | None = None,
        capacity: int = 4,
        async_capacity: int = 1000,
        heartbeat_interval: float = 1.0,
        heartbeat_liveness: int = 3,
        drain_timeout: float = 10.0,
        handle_signals: bool = True,
        state_cache_bytes: int = 256 * 1024 * 1024,
        curve_keys: ClientKeys | None = None,
        max_frame_bytes: int = MAX_FRAME_BYTES,
    ) -> None:
        """``handle_signals=False`` leaves SIGTERM and SIGINT alone: for a worker that shares its process
        and event loop with others (tests, :mod:`awe.testing`), where :meth:`stop` is how it is stopped.
        ``curve_keys`` and ``max_frame_bytes``: see :class:`~awe.transport.DealerEndpoint`.
        """
        self.connect = connect
        self.graphs = graphs
        self.known = KnownGraphs(graphs, registered_tools())
        self.worker_id = worker_id or default_worker_id()
        self.capacity = max(1, capacity)
        self.async_capacity = max(1, async_capacity)
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_liveness = heartbeat_liveness
        self.drain_timeout = drain_timeout
        self.handle_signals = handle_signals
        self.threads = NodeThreads(self.capacity)
        self.running: dict[str, asyncio.Task[None]] = {}
        self.abandoned: set[Future[Any]] = set()
        """Node threads still running after their attempt was given up: each holds a slot."""
        self.exit_code = 0
        self.jobs_received = 0
        self.states = StateCache(state_cache_bytes)
        self.endpoint = DealerEndpoint(self.connect, self.worker_id, curve=curve_keys, max_frame_bytes=max_frame_bytes)
        self.tasks = BackgroundTasks()
        self._sender: asyncio.Task[Any] | None = None
        self._said_goodbye = False
        self._stopping = asyncio.Event()
        self._last_heard = time.monotonic()
        self._outbox: asyncio.Queue[Message] = asyncio.Queue()
        self._send_loop_busy = False
        """The send loop took a message and has not finished sending it: a new one must queue behind it."""
        self._coordinator_reads_batches = False
        """Whether the coordinator said (``Welcome.batches``) that it reads several messages in one send."""

    # -- lifecycle -------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until :meth:`stop` (or SIGTERM/SIGINT), then drain and leave; leave at once if a task dies."""
        if self.handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._stopping.set)
        # Bound before the tasks start, so that they and every job task they create inherit it.
        structlog.contextvars.bind_contextvars(worker=self.worker_id)
        self._sender = self.tasks.spawn(self._send_loop(), name="worker-send")
        self.tasks.spawn(self._recv_loop(), name="worker-recv")
        self.tasks.spawn(self._heartbeat_loop(), name="worker-heartbeat")
        self.tasks.spawn(self._reconnect_loop(), name="worker-reconnect")
        self._say_hello()
        log.info("worker_started", connect=self.connect, capacity=self.capacity, graphs=sorted(self.graphs))
        try:
            if await self._unless_fatal(self._stopping.wait()):
                await self._unless_fatal(self._drain())
            if self.tasks.fatal.is_set():
                await self._leave_broken()
        finally:
            await self.tasks.cancel()
            self.endpoint.close()
            self.threads.shutdown(wait=False, cancel_futures=True)
            log.info("worker_stopped", exit_code=self.exit_code)

    def stop(self) -> None:
        self._stopping.set()

    async def _unless_fatal(self, work: Coroutine[Any, Any, Any]) -> bool:
        """Run ``work`` unless a background task dies first; False if one did (``work`` is cancelled)."""
        task = asyncio.create_task(work, name=f"worker-{getattr(work, '__qualname__', 'work')}")
        fatal = asyncio.create_task(self.tasks.fatal.wait(), name="worker-fatal-watch")
        try:
            await asyncio.wait({task, fatal}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            task.cancel()
            fatal.cancel()
            await asyncio.gather(task, fatal, return_exceptions=True)
        if task.done() and not task.cancelled():
            task.result()  # re-raises what ``work`` raised
        return not self.tasks.fatal.is_set()

    async def _drain(self) -> None:
        log.info("worker_draining", running=len(self.running), timeout=self.drain_timeout)
        if self.running:
            await asyncio.wait(list(self.running.values()), timeout=self.drain_timeout)
        await self._say_goodbye()

    async def _leave_broken(self) -> None:
        """A background task died: hand the running jobs back if the send loop still can, and go.

        Draining would be pointless: without the receive loop no cancel arrives, without the
        heartbeat the coordinator soon takes this worker for dead, and without the send loop no
        result gets out. A fresh process, started by the supervisor, does better.
        """
        self.exit_code = EXIT_SOFTWARE
        self._stopping.set()  # no new jobs; a cancelled job goes back to the coordinator, not "failed"
        can_send = self._sender is not None and not self._sender.done()
        log.error("worker_leaving", reason="a background task died", failures=self.tasks.failures, goodbye=can_send)
        if can_send:
            await self._say_goodbye()
        else:
            self._cancel_running()

    def _cancel_running(self) -> list[str]:
        """Cancel every running job (they end as ``returned``); returns their ids."""
        unfinished = list(self.running)
        for task in self.running.values():
            task.cancel()
        return unfinished

    async def _say_goodbye(self) -> None:
        if not self._said_goodbye:
            self._said_goodbye = True
            # Say goodbye after every result already queued (the send loop keeps the order), so the
            # coordinator sees those results first and sends only the unfinished jobs elsewhere.
            self.send(Goodbye(worker_id=self.worker_id, returned=self._cancel_running()))
        if not await self._flush():
            log.warning("goodbye_not_sent", queued=self._outbox.qsize())

    async def _flush(self) -> bool:
        """Wait until everything queued is sent; False after ``drain_timeout`` or if the send loop ended."""
        flushed = asyncio.ensure_future(self._outbox.join())
        waiting: set[asyncio.Future[Any]] = {flushed}
        if self._sender is not None:
            waiting.add(self._sender)
        try:
            await asyncio.wait(waiting, timeout=self.drain_timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            flushed.cancel()
        return flushed.done() and not flushed.cancelled()

    # -- sending ---------------------------------------------------------------------

    def send(self, message: Message) -> None:
        """Send a message to the coordinator, in order after those before it; safe from the event loop only.

        While at most one job runs, with nothing queued and the send loop idle, it goes at once: a
        result then leaves the worker in this turn of the loop instead of the send loop's next one (a
        step's round trip is some 0.5 ms, and each turn a tenth of it). Otherwise (under load the
        send loop sends what piled up back to back, for less CPU), and for any message that cannot
        go at once or cannot be encoded, the send loop sends it in order.
        """
        if (
            len(self.running) <= 1
            and self._outbox.empty()
            and not self._send_loop_busy
            and self._sender is not None
            and not self._sender.done()
        ):
            with contextlib.suppress(*UNENCODABLE):  # the send loop says why, and what goes in its place
                if self.endpoint.send_now(message):
                    return
        self._outbox.put_nowait(message)

    async def _send_loop(self) -> None:
        while True:
            batch = [await self._outbox.get()]
            if self._coordinator_reads_batches:  # what queued meanwhile goes with it
                while len(batch) < MAX_MESSAGES_PER_SEND and not self._outbox.empty():
                    batch.append(self._outbox.get_nowait())
            self._send_loop_busy = True
            try:
                await self._send_batch(batch)
            finally:
                self._send_loop_busy = False
                for _ in batch:
                    self._outbox.task_done()

    async def _send_batch(self, batch: list[Message]) -> None:
        """Send ``batch`` in order, in as few ZeroMQ messages as the coordinator takes.

        A message that cannot be encoded goes through :meth:`_send_one`, which says why and sends
        what takes its place; the ones before it go first.
        """
        if len(batch) == 1:
            await self._send_one(batch[0])
            return
        frames: list[bytes] = []
        size = 0
        for message in batch:
            try:
                frame = self.endpoint.encode(message)
            except UNENCODABLE:
                if frames:
                    await self.endpoint.send_frames(frames)
                    frames, size = [], 0
                await self._send_one(message)
                continue
            if frames and size + len(frame) > self.endpoint.max_frame_bytes:
                await self.endpoint.send_frames(frames)
                frames, size = [], 0
            frames.append(frame)
            size += len(frame)
        if frames:
            await self.endpoint.send_frames(frames)

    async def _send_one(self, message: Message) -> None:
        """Send ``message``; if msgpack cannot encode it, log and drop it rather than end the loop.

        A dropped ``JobDone`` would leave its run waiting for a result that never comes, so a
        ``JobFailed`` naming the value that could not be encoded goes in its place.
        """
        try:
            await self.endpoint.send(message)
        except UNENCODABLE as exc:
            where = unpackable_field(message)
            log.error(
                "message_not_encodable",
                kind=message.kind,
                job_id=getattr(message, "job_id", None),
                run_id=getattr(message, "run_id", None),
                where=where,
                error_type=type(exc).__name__,
                error=_printable(str(exc)),
                replaced_by=JobFailed.kind if isinstance(message, JobDone) else None,
            )
            if isinstance(message, JobDone):
                await self.endpoint.send(self._result_not_encodable(message, where, exc))

    @staticmethod
    def _result_not_encodable(result: JobDone, where: str, exc: Exception) -> JobFailed:
        problem = f"{type(exc).__name__}: {exc}"
        return JobFailed(
            job_id=result.job_id,
            run_id=result.run_id,
            error={
                "type": RESULT_NOT_ENCODABLE,
                "message": _printable(f"the node's result cannot be sent to the coordinator: {where} ({problem})"),
            },
            duration_ms=result.duration_ms,
        )

    def _say_hello(self) -> None:
        self._coordinator_reads_batches = False  # until this coordinator's Welcome says so (it may be older)
        self.send(
            Hello(
                worker_id=self.worker_id,
                pid=os.getpid(),
                host=socket.gethostname(),
                capacity=self.capacity,
                async_capacity=self.async_capacity,
                graphs=self.known.fingerprints(),
                tools=self.known.tool_names(),
                running=list(self.running),
                stuck=len(self.abandoned),
                jobs_received=self.jobs_received,
                keeps_states=self.states.keeps_states,
            )
        )

    def _beat(self) -> None:
        self.send(Heartbeat(sender=self.worker_id, running=len(self.running), stuck=len(self.abandoned)))

    # -- receiving -------------------------------------------------------------------

    async def _recv_loop(self) -> None:
        while True:
            message = await self.endpoint.recv()
            self._last_heard = time.monotonic()
            if isinstance(message, Job):
                self._job_arrived(message)
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
                self._coordinator_reads_batches = message.batches
                log.info("worker_welcomed", coordinator=message.coordinator_id)
                self._learn_graphs(message.graphs)
            elif isinstance(message, GraphDefined):
                self.known.learn(message.graph_id, message.version, message.definition)
            elif not isinstance(message, Heartbeat):
                log.warning("message_dropped", kind=message.kind, reason="not for a worker")

    def _learn_graphs(self, graphs: list[dict[str, Any]]) -> None:
        """The JSON graphs a ``Welcome`` teaches; an entry that is not well formed is logged and skipped."""
        for entry in graphs:
            graph_id, version, definition = entry.get("graph_id"), entry.get("version"), entry.get("definition")
            if isinstance(graph_id, str) and isinstance(version, int) and isinstance(definition, dict):
                self.known.learn(graph_id, version, definition)
            else:
                log.warning("graph_entry_dropped", reason="not a graph_id, version and definition")

    def _job_arrived(self, job: Job) -> None:
        """Start the job on its whole state, or ask for that state if the job names a copy not kept here.

        A job sent again with its whole state is counted once, as the coordinator counts it.
        """
        self.states.drop(job.ended)
        whole = self.states.whole(job, self.endpoint.last_frame_bytes)
        if whole is None:
            log.info("state_missing", job_id=job.job_id, run_id=job.run_id, base=job.base)
            self.send(StateMissing(job_id=job.job_id, run_id=job.run_id))
            return
        self.jobs_received += 1
        self._start_job(whole)

    def _start_job(self, job: Job) -> None:
        if self._stopping.is_set():
            return  # returned to the coordinator by the Goodbye at the end of the drain
        if job.job_id in self.running:
            log.info("duplicate_job_ignored", job_id=job.job_id)
            return
        task = asyncio.create_task(self._run_job(job), name=f"job-{job.job_id}")
        self.running[job.job_id] = task
        task.add_done_callback(functools.partial(self._job_task_ended, job))

    def _job_task_ended(self, job: Job, task: asyncio.Task[None]) -> None:
        """A job cancelled before its task first ran never reaches its ``finally``: account for it here.

        (A ``CancelJob`` right behind its ``Job`` is read before the job's task has started.)
        Without this its slot would stay taken here, and the coordinator would wait for its answer.
        """
        if self.running.get(job.job_id) is not task:
            return  # the task ran and cleaned up after itself
        del self.running[job.job_id]
        if task.cancelled() and not self._stopping.is_set():
            log.info("job_finished", **job_fields(job), outcome="cancelled", duration_ms=0.0)
            self.send(
                JobFailed(
                    job_id=job.job_id,
                    run_id=job.run_id,
                    error={"type": JOB_CANCELLED, "message": "cancelled by the coordinator before it started"},
                )
            )

    async def _run_job(self, job: Job) -> None:
        """Run one job and send its result, with its identity bound to every line logged meanwhile.

        This coroutine is the whole of its task (see :meth:`_start_job`), and a task runs in its
        own copy of the context: the binding reaches no other job and needs no undoing.
        """
        fields = job_fields(job)
        structlog.contextvars.bind_contextvars(**fields)
        started = time.perf_counter()
        log.info("job_received")
        try:
            result = await self._execute(job, fields)
        except asyncio.CancelledError:
            log.info("job_finished", outcome="returned", duration_ms=_ms_since(started))
            raise
        else:
            self.send(result)  # before the line: the result is what the run waits for
            log.info("job_finished", **outcome_fields(result), duration_ms=_ms_since(started))
        finally:
            self.running.pop(job.job_id, None)

    async def _execute(self, job: Job, fields: dict[str, Any]) -> JobDone | JobFailed | JobInterrupted:
        """The job's result; a ``CancelJob`` gives a failure, a drain that ran out of time re-raises."""
        graph = self.known.find(job.graph_id, job.graph_version)
        if graph is None:
            return JobFailed(
                job_id=job.job_id,
                run_id=job.run_id,
                error=describe_error(LookupError(f"worker {self.worker_id} has no graph {job.graph_id!r}")),
            )
        # A sync node logs from a thread, which does not see this task's context variables:
        # its logger carries the job's fields itself.
        forward = functools.partial(self._forward_log, asyncio.get_running_loop(), job)
        ctx = Context(
            run_id=job.run_id,
            graph_id=job.graph_id,
            node=job.node,
            step=job.step,
            attempt=job.attempt,
            worker_id=self.worker_id,
            branch=job.branch or job.node,
            log=NodeLogger(log, forward, context={"worker": self.worker_id, **fields}),
            answer=job.answer,
        )
        try:
            return await run_job(graph, job, ctx, self.threads, on_abandoned=self._thread_abandoned)
        except asyncio.CancelledError:
            if self._stopping.is_set():
                raise  # a drain that ran out of time: the Goodbye hands the job back
            # Cancelled on request. An async node stops here; a sync node's thread cannot be
            # interrupted and finishes in the background, its result discarded.
            return JobFailed(
                job_id=job.job_id,
                run_id=job.run_id,
                error={"type": JOB_CANCELLED, "message": "cancelled by the coordinator"},
            )

    def _thread_abandoned(self, future: Future[Any]) -> None:
        """Count the slot as stuck, and tell the coordinator before the job's result goes out.

        Called on the event loop (by the job's task), so the loop is the running one.
        """
        loop = asyncio.get_running_loop()
        self.abandoned.add(future)
        future.add_done_callback(lambda f: loop.call_soon_threadsafe(self._thread_returned, f))
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

    def _forward_log(
        self, loop: asyncio.AbstractEventLoop, job: Job, level: str, event: str, fields: dict[str, Any]
    ) -> None:
        """Called from the node, which may be in a thread: hand the message to the loop."""
        message = NodeLog(job_id=job.job_id, run_id=job.run_id, node=job.node, level=level, event=event, fields=fields)
        loop.call_soon_threadsafe(self.send, message)

    # -- heartbeats ------------------------------------------------------------------

    async def _reconnect_loop(self) -> None:
        """Say Hello again as soon as the connection comes back (the first Hello goes out at start)."""
        async for count in self.endpoint.handshakes():
            if count > 1:
                log.info("coordinator_reconnected")
                self._say_hello()

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            self._beat()
            silent_for = time.monotonic() - self._last_heard
            if silent_for > self.heartbeat_interval * self.heartbeat_liveness:
                log.warning("coordinator_silent", seconds=round(silent_for, 1))
                self._last_heard = time.monotonic()  # one Hello per liveness period, not one per beat
                self.endpoint.renew_if_ignored(after=3 * self.heartbeat_interval * self.heartbeat_liveness)
                self._say_hello()


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
