"""The coordinator's side of the worker protocol, driven by a scripted worker on a raw ZeroMQ socket.

These are the orderings a real worker produces only by bad luck (a Hello that crosses a Job on the
wire), written out message by message.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import sample_graphs
import zmq
import zmq.asyncio
from engine import Engine

from awe.transport.messages import Hello, Job, JobDone, Message, decode

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

    async def hello(self, *, running: list[str], jobs_received: int) -> None:
        await self.send(
            Hello(
                worker_id="scripted",
                pid=PID,
                host="test",
                capacity=1,
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
