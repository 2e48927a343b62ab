"""The coordinator's side of the worker protocol, driven by a scripted worker on a raw ZeroMQ socket.

These are the orderings a real worker produces only by bad luck (a Hello that crosses a Job on the
wire), written out message by message.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import sample_graphs
import zmq
import zmq.asyncio
from engine import Engine

from awe.transport.messages import (
    CancelJob,
    Heartbeat,
    Hello,
    Job,
    JobDone,
    JobFailed,
    Message,
    Rejoin,
    Welcome,
    decode,
)

PID = 4242


class ScriptedWorker:
    def __init__(self, bind: str) -> None:
        self.ctx = zmq.asyncio.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.IDENTITY, b"scripted")
        self.sock.connect(bind)

    async def send(self, message: Message) -> None:
        await self.sock.send(message.encode())

    async def hello(self, *, running: list[str], jobs_received: int, capacity: int = 1) -> None:
        await self.send(
            Hello(
                worker_id="scripted",
                pid=PID,
                host="test",
                capacity=capacity,
                running=running,
                graphs={"slow": sample_graphs.slow.compile().fingerprint},
                jobs_received=jobs_received,
            )
        )

    async def next_job(self) -> Job:
        async with asyncio.timeout(10):
            while True:
                message = decode(await self.sock.recv())
                if isinstance(message, Job):
                    return message

    async def next_message(self, kind: type[Message]) -> Message:
        """The next message of ``kind``; the ones before it are dropped."""
        async with asyncio.timeout(10):
            while True:
                message = decode(await self.sock.recv())
                if isinstance(message, kind):
                    return message

    async def messages_for(self, seconds: float) -> list[Message]:
        """Everything the coordinator sends in the next ``seconds``."""
        received: list[Message] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while True:
                    received.append(decode(await self.sock.recv()))
        return received

    async def keep_alive(self, running: set[str]) -> None:
        """Heartbeat like a real worker, counting the jobs in ``running``, until cancelled."""
        while True:
            await self.send(Heartbeat(sender="scripted", running=len(running)))
            await asyncio.sleep(0.1)

    def close(self) -> None:
        self.sock.close()
        self.ctx.term()


@pytest.fixture
async def scripted(bare_engine: Engine) -> AsyncIterator[ScriptedWorker]:
    await bare_engine.start_coordinator()
    worker = ScriptedWorker(bare_engine.bind)
    try:
        await worker.hello(running=[], jobs_received=0)
        await bare_engine.wait_for_workers(1)
        yield worker
    finally:
        worker.close()


async def test_a_hello_that_crossed_a_job_on_the_wire_does_not_lose_it(
    bare_engine: Engine, scripted: ScriptedWorker
) -> None:
    run_id = await bare_engine.start_run("slow", {"seconds": 1})
    job = await scripted.next_job()
    # Said before the job arrived (say, once per Rejoin in a burst): it cannot name the job yet.
    await scripted.hello(running=[], jobs_received=0)
    await scripted.hello(running=[job.job_id], jobs_received=1)
    await scripted.send(JobDone(job_id=job.job_id, run_id=run_id, delta={"slept": 1}))
    after = await scripted.next_job()
    assert (after.node, after.attempt) == ("after", 1)
    await scripted.send(JobDone(job_id=after.job_id, run_id=run_id, delta={"after": True}))
    final = await bare_engine.wait_finished(run_id)
    assert final["status"] == "completed"
    assert [(s["node"], s["attempt"], s["status"]) for s in await bare_engine.steps(run_id)] == [
        ("sleep", 1, "completed"),
        ("after", 1, "completed"),
    ]


async def test_a_job_the_worker_received_and_no_longer_runs_is_lost_and_sent_again(
    bare_engine: Engine, scripted: ScriptedWorker
) -> None:
    run_id = await bare_engine.start_run("slow", {"seconds": 1})
    job = await scripted.next_job()
    await scripted.hello(running=[], jobs_received=1)  # it had the job, and has it no more
    again = await scripted.next_job()
    assert (again.node, again.attempt) == ("sleep", 2)
    steps = await bare_engine.steps(run_id)
    assert [(s["attempt"], s["status"]) for s in steps] == [(1, "lost")]
    assert job.attempt == 1


async def test_jobs_a_rejoining_worker_still_runs_hold_its_slots_until_it_reports_them_ended(
    bare_engine: Engine,
) -> None:
    """A worker that outlived its coordinator is full: nothing is sent to it until its old jobs end.

    The new coordinator does not want those jobs (it never heard of them) and cancels them, but a
    cancelled job holds its slot until the worker answers; counting the slots as free over-filled
    the worker.
    """
    capacity = 2
    ghosts = ["ghost-1", "ghost-2"]
    await bare_engine.start_coordinator()
    worker = ScriptedWorker(bare_engine.bind)
    running = set(ghosts)
    beating = asyncio.create_task(worker.keep_alive(running))
    try:
        await worker.next_message(Rejoin)  # its heartbeat reached a coordinator that does not know it
        await worker.hello(running=ghosts, jobs_received=len(ghosts), capacity=capacity)
        await bare_engine.wait_for_workers(1)
        runs = {await bare_engine.start_run("slow", {"seconds": 1}) for _ in range(capacity)}

        early = await worker.messages_for(1.5)  # three heartbeat intervals, the runs queued all along
        assert sorted(m.job_id for m in early if isinstance(m, CancelJob)) == ghosts
        assert [m for m in early if isinstance(m, Job)] == []

        jobs = []
        for ghost in ghosts:  # each answered cancel frees one slot, and one job comes
            running.discard(ghost)
            await worker.send(JobFailed(job_id=ghost, run_id="gone", error={"type": "JobCancelled", "message": "-"}))
            jobs.append(await worker.next_job())
            running.add(jobs[-1].job_id)
            if ghost != ghosts[-1]:
                assert [m for m in await worker.messages_for(0.5) if isinstance(m, Job)] == []
        assert {job.run_id for job in jobs} == runs

        for job in jobs:
            running.discard(job.job_id)
            await worker.send(JobDone(job_id=job.job_id, run_id=job.run_id, delta={"slept": 1}))
        for _ in runs:
            after = await worker.next_job()
            await worker.send(JobDone(job_id=after.job_id, run_id=after.run_id, delta={"after": True}))
        for run_id in runs:
            assert (await bare_engine.wait_finished(run_id))["status"] == "completed"
    finally:
        beating.cancel()
        await asyncio.gather(beating, return_exceptions=True)
        worker.close()


async def test_messages_sent_together_are_read_each_and_a_bad_one_is_dropped_alone(
    bare_engine: Engine, scripted: ScriptedWorker
) -> None:
    welcome = await scripted.next_message(Welcome)
    assert isinstance(welcome, Welcome) and welcome.batches  # what lets a worker send its results together
    run_id = await bare_engine.start_run("slow", {"seconds": 1})
    job = await scripted.next_job()
    done = JobDone(job_id=job.job_id, run_id=run_id, delta={"slept": 1})
    await scripted.sock.send_multipart([b"\x00 not msgpack", done.encode(), Heartbeat(sender="scripted").encode()])
    after = await scripted.next_job()  # the result after the bad frame was read all the same
    assert (after.node, after.attempt) == ("after", 1)
    await scripted.send(JobDone(job_id=after.job_id, run_id=run_id, delta={"after": True}))
    assert (await bare_engine.wait_finished(run_id))["status"] == "completed"
