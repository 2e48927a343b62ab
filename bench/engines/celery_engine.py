"""Celery with a Redis broker and result backend: a ``redis-server`` and a prefork worker of 2 processes.

Both are started here, on a free loopback port, each in its own session, and stopped by pid.
Redis runs without persistence (``--save '' --appendonly no``), so nothing of a run survives a
restart: Celery's column is not durable. A run is a ``chain`` of tasks (the fan-out a
``chord``); the client calls Celery from one thread of its own, as Celery's client is blocking.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from awe.testing import free_port
from engines.common import BENCH, CHAIN_LENGTH, FAN_BRANCHES, PidLog, chain_state, check_chain, spawn, stop

START_TIMEOUT = 60.0
RESULT_TIMEOUT = 600.0


class CeleryEngine:
    name = "celery"

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.redis: Any = None
        self.worker: Any = None
        self._client = ThreadPoolExecutor(1, thread_name_prefix="celery-client")
        self._waiting: list[str] = []

    async def start(self, folder: Path, pids: PidLog) -> None:
        import celery
        import redis

        port = free_port()
        url = f"redis://127.0.0.1:{port}/0"
        os.environ["AWE_BENCH_REDIS"] = url
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.redis = spawn(argv, folder / "redis.out", pids)
        self.counter = redis.Redis.from_url(url)
        await self._until(self.counter.ping, "redis-server to answer")
        from engines import celery_tasks

        self.tasks = celery_tasks
        worker = [sys.executable, "-m", "celery", "-A", "engines.celery_tasks", "worker", "--pool", "prefork"]
        worker += ["--concurrency", "2", "--loglevel", "WARNING", "--hostname", f"bench-{port}@127.0.0.1"]
        worker += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(BENCH), os.environ.get("PYTHONPATH")]))}
        self.worker = spawn(worker, folder / "worker.out", pids, cwd=BENCH, env=env)
        await self._until(lambda: celery_tasks.app.control.ping(timeout=0.5), "the Celery worker to answer a ping")
        self.notes.append(f"celery {celery.__version__}, prefork pool of 2")

    async def _until(self, probe: Any, what: str) -> None:
        """Until ``probe()`` returns something true (an exception counts as not yet), within START_TIMEOUT."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                if await asyncio.to_thread(probe):
                    return
            except Exception:
                pass
            if self.redis.poll() is not None or (self.worker is not None and self.worker.poll() is not None):
                raise RuntimeError(f"a process exited while waiting for {what}")
            await asyncio.sleep(0.1)
        raise TimeoutError(f"timed out waiting for {what}")

    async def stop(self) -> None:
        self._client.shutdown(wait=False, cancel_futures=True)
        for proc in (self.worker, self.redis):  # the worker first: it talks to Redis while it shuts down
            if proc is not None:
                await asyncio.to_thread(stop, proc)

    def processes(self) -> list[int]:
        """redis-server and the worker (its pool's processes are found as its children)."""
        return [p.pid for p in (self.redis, self.worker) if p is not None and p.poll() is None]

    async def _call(self, fn: Any, *args: Any) -> Any:
        """Celery's blocking client on one thread of its own, so that its result consumer is never shared."""
        return await asyncio.get_running_loop().run_in_executor(self._client, fn, *args)

    def _chain(self, state: dict[str, Any], length: int) -> Any:
        """A run as Celery's ``chain``: each task's result is the next one's first argument."""
        from celery import chain

        step = self.tasks.step
        return chain(step.s(state, "n0"), *(step.s(f"n{i}") for i in range(1, length))).apply_async()

    def _run_chains(self, runs: int, state: dict[str, Any]) -> list[tuple[float, float]]:
        """Submit every chain, then read each final state; a run finished when its last task stamped it."""
        submitted = []
        for _ in range(runs):
            submitted.append((time.time(), self._chain(state, CHAIN_LENGTH)))
        times = []
        for started, result in submitted:
            final = result.get(timeout=RESULT_TIMEOUT)
            check_chain(final, CHAIN_LENGTH)
            times.append((started, final["finished_at"]))
        return times

    async def chain(self, runs: int, text_bytes: int) -> list[tuple[float, float]]:
        return list(await self._call(self._run_chains, runs, chain_state(text_bytes)))

    async def chain3(self) -> None:
        final = await self._call(lambda: self._chain(chain_state(16), 3).get(timeout=30))
        check_chain(final, 3)

    def _fan(self, iterations: int) -> int:
        from celery import chord

        header = [self.tasks.burn.s(iterations) for _ in range(FAN_BRANCHES)]
        return int(chord(header)(self.tasks.total.s()).get(timeout=60))

    async def fanout(self, iterations: int) -> None:
        await self._call(self._fan, iterations)

    def _submit_waiting(self, runs: int) -> None:
        for _ in range(runs):
            self._waiting.append(self.tasks.sleep_one_second.apply_async().id)

    async def start_waiting(self, runs: int) -> None:
        await self._call(self._submit_waiting, runs)

    def _count_results(self) -> int:
        """How many of the submitted sleep tasks have a result in Redis (Celery writes it when the task ends)."""
        backend = self.tasks.app.backend
        ids = list(self._waiting)
        done = 0
        for i in range(0, len(ids), 1000):
            keys = [backend.get_key_for_task(task_id) for task_id in ids[i : i + 1000]]
            done += int(self.counter.exists(*keys)) if keys else 0
        return done

    async def finished_waiting(self) -> int:
        return int(await asyncio.to_thread(self._count_results))
