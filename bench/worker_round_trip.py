"""A worker's side of a step: one real ``awe worker`` process and a bare ROUTER in this process.

Usage: python bench/worker_round_trip.py [--sequential 1000] [--burst 3000] [--in-flight 8]

*sequential*: one ``chain10`` job at a time, the round trip from the send of the job to the
receipt of its result (p50, mean) and the worker's CPU per job. *burst*: ``--burst`` jobs with
``--in-flight`` of them sent at a time (a new one per result): jobs/s and the worker's CPU per job
(user and system). No coordinator, no SQLite, no HTTP: what the transport and the worker cost.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time

from harness import HERE, free_port  # this script's folder is on sys.path

from awe.transport import RouterEndpoint
from awe.transport.messages import Hello, Job, JobDone, JobFailed, Welcome

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
STATE = {"counter": 0, "visited": [], "text": "x" * 1024}


def cpu_ticks(pid: int) -> tuple[int, int]:
    """User and system CPU of a process so far, in clock ticks."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def job(i: int) -> Job:
    return Job(f"j{i}", f"r{i}", "chain10", "n0", 1, 1, STATE)


async def result(router: RouterEndpoint) -> None:
    while True:
        _, message = await router.recv()
        if isinstance(message, (JobDone, JobFailed)):
            return


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential", type=int, default=1000)
    parser.add_argument("--burst", type=int, default=3000)
    parser.add_argument("--in-flight", type=int, default=8)
    args = parser.parse_args()

    router = RouterEndpoint(f"tcp://127.0.0.1:{free_port()}")
    command = [sys.executable, "-m", "awe", "worker", "--graphs", "bench_graphs", "--connect", router.address]
    command += ["--worker-id", "round-trip", "--log-dir", tempfile.mkdtemp(prefix="awe-rt-")]
    worker = subprocess.Popen(command, cwd=HERE, stdout=subprocess.DEVNULL)
    try:
        async with asyncio.timeout(30):
            while not isinstance((received := await router.recv())[1], Hello):
                pass
        identity = received[0]
        await router.send(identity, Welcome("round-trip", heartbeat_interval=1.0))
        for i in range(50):  # warm-up
            await router.send(identity, job(i))
            await result(router)

        before = cpu_ticks(worker.pid)
        trips = []
        for i in range(args.sequential):
            sent = time.perf_counter()
            await router.send(identity, job(100_000 + i))
            await result(router)
            trips.append(time.perf_counter() - sent)
        user, system = (b - a for a, b in zip(before, cpu_ticks(worker.pid), strict=True))
        print(
            f"sequential: round trip p50 {statistics.median(trips) * 1e3:.3f} ms, mean "
            f"{statistics.mean(trips) * 1e3:.3f} ms; worker CPU per job "
            f"{(user + system) / TICKS_PER_SECOND / args.sequential * 1e3:.3f} ms"
        )

        before, started, sent = cpu_ticks(worker.pid), time.perf_counter(), 0
        for _ in range(min(args.in_flight, args.burst)):
            await router.send(identity, job(200_000 + sent))
            sent += 1
        for _ in range(args.burst):
            await result(router)
            if sent < args.burst:
                await router.send(identity, job(200_000 + sent))
                sent += 1
        wall = time.perf_counter() - started
        user, system = (b - a for a, b in zip(before, cpu_ticks(worker.pid), strict=True))
        per_job = 1e3 / TICKS_PER_SECOND / args.burst
        print(
            f"burst ({args.in_flight} in flight): {args.burst / wall:,.0f} jobs/s; worker CPU per job "
            f"{(user + system) * per_job:.3f} ms (user {user * per_job:.3f}, system {system * per_job:.3f})"
        )
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        router.close()


if __name__ == "__main__":
    asyncio.run(main())
