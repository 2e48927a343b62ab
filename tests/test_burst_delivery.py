"""Many jobs and results in flight at once reach the other side exactly once, each with its own result.

Both ends take what is already queued without waiting, and wait on the socket's descriptor only
when nothing is (``awe.transport.sockets._Driven``). A real worker process is sent a flood of jobs
at once, then jobs a few at a time, a new one for each result, so that its results go out while
its receive waits: a send that took the signal of a job that came in meanwhile must not leave
that job unread.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from engine import Engine

from awe.transport import RouterEndpoint
from awe.transport.messages import Hello, Job, JobDone, Message, Welcome
from awe.transport.sockets import DRAIN_BEFORE_YIELD

FLOOD = 4 * DRAIN_BEFORE_YIELD + 7
WINDOWED = 300
IN_FLIGHT = 6


async def next_from(router: RouterEndpoint, kind: type[Message]) -> tuple[bytes, Message]:
    async with asyncio.timeout(10):
        while True:
            identity, message = await router.recv()
            if isinstance(message, kind):
                return identity, message


async def next_of(router: RouterEndpoint, kind: type[Message]) -> Message:
    return (await next_from(router, kind))[1]


def job(i: int) -> Job:
    return Job(f"j{i}", f"r{i}", "counter_loop", "increment", 1, 1, {"count": i, "target": 10**6, "trace": []})


def check(results: list[Message], numbers: range) -> None:
    seen = Counter(result.job_id for result in results if isinstance(result, JobDone))
    assert set(seen) == {f"j{i}" for i in numbers}
    assert max(seen.values()) == 1, [job_id for job_id, count in seen.items() if count > 1]
    for result in results:
        assert isinstance(result, JobDone)
        i = int(result.job_id[1:])
        assert result.run_id == f"r{i}" and result.route == "again"
        assert result.delta["count"] == i + 1 and len(result.delta["trace"]) == 1


@pytest.mark.parametrize("batches", [False, True], ids=["one-per-send", "results-together"])
async def test_jobs_in_floods_and_a_few_at_a_time_each_get_exactly_their_own_result(
    bare_engine: Engine, batches: bool
) -> None:
    router = RouterEndpoint(bare_engine.bind)
    try:
        bare_engine.start_worker(capacity=4)
        identity, _ = await next_from(router, Hello)
        await router.send(identity, Welcome("test-coordinator", heartbeat_interval=0.5, batches=batches))

        for i in range(FLOOD):  # all queued at once: the worker drains them in floods
            await router.send(identity, job(i))
        check([await next_of(router, JobDone) for _ in range(FLOOD)], range(FLOOD))

        numbers = range(FLOOD, FLOOD + WINDOWED)
        for i in numbers[:IN_FLIGHT]:
            await router.send(identity, job(i))
        results: list[Message] = []
        for i in numbers[IN_FLIGHT:]:
            results.append(await next_of(router, JobDone))
            await router.send(identity, job(i))
        results += [await next_of(router, JobDone) for _ in range(IN_FLIGHT)]
        check(results, numbers)
    finally:
        router.close()
