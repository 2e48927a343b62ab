"""How the dispatcher sends: a job queued by a commit's callback leaves in the same turn of the loop (one
that cannot waits for the pump), and a freed worker takes a job whose run's state it keeps.

A real Dispatcher, pool and encoder with an endpoint that records frames instead of a socket, so
that "the socket has no room" can be had on demand.
"""

from __future__ import annotations

import asyncio

import pytest
from test_rejoin import RecordingOwner, hello_message

from awe.coordinator.dispatcher import Dispatcher
from awe.coordinator.plan import JobInput, JobSpec
from awe.coordinator.worker_pool import WorkerPool
from awe.tasks import BackgroundTasks
from awe.transport.messages import Hello, Job, Message, decode


class ScriptedEndpoint:
    """Sends at once while ``room``; the awaited send always gets through (room comes, eventually)."""

    def __init__(self) -> None:
        self.room = True
        self.frames: list[tuple[str, Message]] = []

    def encode(self, message: Message) -> bytes:
        return message.encode()

    async def send(self, identity: bytes, message: Message) -> None:
        self.frames.append(("awaited", message))

    async def send_frame(self, identity: bytes, frame: bytes) -> None:
        self.frames.append(("awaited", decode(frame)))

    def send_frame_now(self, identity: bytes, frame: bytes) -> bool:
        if self.room:
            self.frames.append(("at once", decode(frame)))
        return self.room

    def jobs(self) -> list[tuple[str, Job]]:
        return [(how, message) for how, message in self.frames if isinstance(message, Job)]


class StateOwner(RecordingOwner):
    def job_input(self, job: JobSpec) -> JobInput | None:
        return JobInput({"big": "x" * 1000, "n": job.step}) if job.job_id in self.wanted else None


async def _dispatcher(
    *jobs: JobSpec, workers: tuple[bytes, ...] = (b"w",), capacity: int = 2
) -> tuple[Dispatcher, ScriptedEndpoint, StateOwner]:
    pool = WorkerPool(heartbeat_interval=1.0, liveness=3)
    endpoint, owner = ScriptedEndpoint(), StateOwner({job.job_id for job in jobs})
    disp = Dispatcher(endpoint, pool, owner, "coordinator-test")  # type: ignore[arg-type]
    for identity in workers:
        hello = hello_message(capacity=capacity)
        await disp.on_hello(identity, Hello(**{**hello.__dict__, "worker_id": identity.decode(), "keeps_states": True}))
    return disp, endpoint, owner


async def test_a_submitted_job_is_sent_before_the_loop_turns() -> None:
    job = JobSpec("run", "g", "node", 1, 1)
    disp, endpoint, owner = await _dispatcher(job)
    disp.submit(job)  # no await, and no pump running: sent all the same
    assert [(how, m.job_id) for how, m in endpoint.jobs()] == [("at once", job.job_id)]
    assert owner.sent == [job.job_id]


async def test_a_job_with_no_room_goes_back_in_line_and_the_pump_sends_it_whole() -> None:
    first, second = JobSpec("run", "g", "node", 1, 1), JobSpec("run", "g", "node", 2, 1)
    disp, endpoint, owner = await _dispatcher(first, second)
    disp.submit(first)
    worker = disp.pool.get(b"w")
    assert worker is not None
    disp.finish(worker, first.job_id)
    endpoint.room = False
    disp.submit(second)  # its frame (a delta against the copy the first job left) could not go
    assert list(worker.running) == [] and [job.job_id for job in disp.queue] == [second.job_id]
    assert owner.sent == [first.job_id]
    tasks = BackgroundTasks()
    disp.start(tasks)
    for _ in range(100):
        if owner.sent == [first.job_id, second.job_id]:
            break
        await asyncio.sleep(0.01)
    await tasks.cancel()
    (how, resent) = endpoint.jobs()[-1]
    assert (how, resent.job_id) == ("awaited", second.job_id)
    assert resent.base == 0 and resent.state["big"] == "x" * 1000  # the whole state: no copy was assumed
    assert list(worker.running) == [second.job_id] and worker.running[second.job_id].seq == 2


async def test_a_fault_in_dispatching_at_once_is_raised_by_the_pump() -> None:
    job = JobSpec("run", "g", "node", 1, 1)
    disp, _, owner = await _dispatcher(job)

    def broken(job: JobSpec) -> JobInput | None:
        raise RuntimeError("a bug in job_input")

    owner.job_input = broken  # type: ignore[method-assign]
    tasks = BackgroundTasks()
    (pump, *others) = disp.start(tasks)
    disp.submit(job)  # the caller (a commit's callback) is not the one to fail
    with pytest.raises(RuntimeError, match="a bug in job_input"):
        await asyncio.wait_for(pump, 5)
    await tasks.cancel(*others)


async def test_a_freed_worker_takes_a_job_of_a_run_whose_state_it_keeps_before_the_first_in_line() -> None:
    a1, b1 = JobSpec("run-a", "g", "n", 1, 1), JobSpec("run-b", "g", "n", 1, 1)
    b2, new, a2 = JobSpec("run-b", "g", "n", 2, 1), JobSpec("run-new", "g", "n", 1, 1), JobSpec("run-a", "g", "n", 2, 1)
    disp, endpoint, owner = await _dispatcher(a1, b1, b2, new, a2, workers=(b"wa", b"wb"), capacity=1)
    disp.submit(a1)  # to wa (both free: the first)
    disp.submit(b1)  # to wb: both busy now
    for job in (b2, new, a2):
        disp.submit(job)
    assert [job.run_id for job in disp.queue] == ["run-b", "run-new", "run-a"]
    worker_a, worker_b = disp.pool.get(b"wa"), disp.pool.get(b"wb")
    assert worker_a is not None and worker_b is not None
    assert list(worker_a.running) == [a1.job_id] and list(worker_b.running) == [b1.job_id]

    disp.finish(worker_a, a1.job_id)
    disp.submit(JobSpec("run-c", "g", "n", 1, 1))  # any submission dispatches what it can
    assert list(worker_a.running) == [a2.job_id]  # its own run's job, from the back of the line
    (how, sent) = endpoint.jobs()[-1]
    assert how == "at once"
    assert sent.job_id == a2.job_id and sent.base != 0 and "big" not in sent.state  # only what changed

    disp.finish(worker_b, b1.job_id)
    disp.submit(JobSpec("run-d", "g", "n", 1, 1))
    assert list(worker_b.running) == [b2.job_id]
    assert [job.run_id for job in disp.queue] == ["run-new", "run-c", "run-d"]
    assert owner.sent == [a1.job_id, b1.job_id, a2.job_id, b2.job_id]
