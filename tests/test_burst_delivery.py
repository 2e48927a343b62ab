"""Many jobs and results queued at once reach the other side exactly once, each with its own result.

Both ends receive what is already queued without awaiting (``awe.transport.sockets._Receiver``),
and yield to the event loop now and then in a flood; a real worker process is sent several times
that many jobs at once, and the test's side reads the results through awe's own ROUTER endpoint.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from engine import Engine

from awe.transport import RouterEndpoint
from awe.transport.messages import Hello, Job, JobDone, Message, Welcome
from awe.transport.sockets import DRAIN_BEFORE_YIELD

JOBS = 4 * DRAIN_BEFORE_YIELD + 7


async def next_of(router: RouterEndpoint, kind: type[Message]) -> tuple[bytes, Message]:
    async with asyncio.timeout(20):
        while True:
            identity, message = await router.recv()
            if isinstance(message, kind):
                return identity, message


async def test_a_flood_of_jobs_gives_every_job_exactly_its_own_result(bare_engine: Engine) -> None:
    router = RouterEndpoint(bare_engine.bind)
    try:
        bare_engine.start_worker(capacity=4)
        identity, _ = await next_of(router, Hello)
        await router.send(identity, Welcome("test-coordinator", heartbeat_interval=0.5))
        for i in range(JOBS):  # all queued at once: the worker drains them in floods
            state = {"count": i, "target": 10**6, "trace": []}
            await router.send(identity, Job(f"j{i}", f"r{i}", "counter_loop", "increment", 1, 1, state))

        results: dict[str, JobDone] = {}
        seen: Counter[str] = Counter()
        while len(results) < JOBS:
            _, done = await next_of(router, JobDone)
            assert isinstance(done, JobDone)
            seen[done.job_id] += 1
            results[done.job_id] = done

        assert set(results) == {f"j{i}" for i in range(JOBS)}
        assert max(seen.values()) == 1, [job_id for job_id, count in seen.items() if count > 1]
        for i in range(JOBS):
            done = results[f"j{i}"]
            assert done.run_id == f"r{i}"
            assert done.delta["count"] == i + 1 and len(done.delta["trace"]) == 1
            assert done.route == "again"
    finally:
        router.close()
