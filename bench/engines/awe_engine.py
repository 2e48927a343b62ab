"""awe as ``awe up`` starts it (a coordinator, 2 worker processes of capacity 4), driven over its HTTP API only.

Runs are submitted with ``POST /graph/run``. Completion times come from the runs' own
``finished_at`` in the SQLite file (read-only, after the engine reports no active run), so that
polling 500 runs over HTTP does not load the machine being measured. A single run's result (the
latency and fan-out workloads) is what the client holds: ``"wait": true`` when the engine knows
that field, otherwise ``GET /graph/state/{id}`` every millisecond.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from harness import LocalEngine
from prometheus_client.parser import text_string_to_metric_families

from awe.testing import FINISHED, timestamp
from engines.common import CHAIN_LENGTH, FAN_BRANCHES, PidLog, chain_state, check_chain

IDLE_TIMEOUT = 600.0
"""The longest a batch of chain runs may take before the comparison gives up on it."""
RUN_TIMEOUT = 30.0
"""The longest one run of the latency or fan-out workloads may take."""
POLL = 0.001


class AweEngine:
    """A :class:`harness.LocalEngine` (2 workers, capacity 4, 1 s heartbeats: ``awe up``'s defaults)."""

    name = "awe"

    def __init__(self, durability: str = "normal", *, nodes: str = "") -> None:
        """``durability``: ``--durability`` of the coordinator (``full`` syncs every commit to the disk).

        ``nodes``: which of ``bench_graphs``' chains run. ``""``: sync nodes, each run in one of the
        worker's threads; ``"inline"``: sync nodes declared ``inline=True`` (``chain10_inline``,
        ``chain3_inline``), run on the worker's event loop; ``"async"``: ``async def`` nodes
        (``chain10_async``, ``chain3_async``), as nodes that call a model are written. Fan-out's CPU
        branches are always sync nodes in threads.
        """
        if nodes not in ("", "inline", "async"):
            raise ValueError(f"nodes must be '', 'inline' or 'async', not {nodes!r}")
        self.durability = durability
        self.chain_suffix = f"_{nodes}" if nodes else ""
        if durability != "normal":
            self.name = f"awe-{durability}"
        if nodes:
            self.name += f"-{nodes}"
        self.engine: LocalEngine | None = None
        self.session: aiohttp.ClientSession | None = None
        self.wait_supported = False
        self.notes: list[str] = []
        self._batch = 0
        self._external: tuple[str, Path] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, folder: Path, pids: PidLog) -> None:
        self.pids = pids
        if os.environ.get("AWE_BENCH_URL"):  # compare.py --awe-url: someone else's engine, for profiling
            self._external = (os.environ["AWE_BENCH_URL"], Path(os.environ["AWE_BENCH_DB"]))
            self.notes.append(f"an engine started by hand at {self._external[0]}: no memory figure")
        else:
            self.engine = LocalEngine(folder, workers=2, capacity=4)
            self.engine.env["AWE_DURABILITY"] = self.durability
            await self.engine.__aenter__()
            for pid in self.processes():
                pids.add(pid)
        # aiohttp's default: at most 100 connections, which also bounds the 10,000 submissions at once.
        # Bodies are written by orjson, as a client that sends large states would: json.dumps takes
        # 1.9 ms per MB in this one-threaded client, which is the benchmark's cost, not the engine's.
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=100), json_serialize=lambda value: orjson.dumps(value).decode()
        )
        self.wait_supported = await self._probe_wait()
        self.notes.append("results by POST /graph/run wait=true" if self.wait_supported else "results by 1 ms polling")

    async def stop(self) -> None:
        if self.session is not None:
            with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
                self.notes.append(await self._loop_lag())
            await self.session.close()
        if self.engine is not None:
            try:
                await self.engine.close()
            except AssertionError as exc:  # a process ignored SIGTERM for 10 s: it was killed; say so
                self.notes.append(f"stop: {exc}")

    def processes(self) -> list[int]:
        """The coordinator and the workers (the benchmark's own client is not the engine)."""
        if self.engine is None:
            return []
        procs = [*self.engine.workers, *([self.engine.coordinator] if self.engine.coordinator else [])]
        return [p.pid for p in procs if p.alive()]

    @property
    def url(self) -> str:
        if self._external:
            return self._external[0]
        assert self.engine is not None
        return self.engine.url

    @property
    def db(self) -> Path:
        if self._external:
            return self._external[1]
        assert self.engine is not None
        return self.engine.db

    async def _loop_lag(self) -> str:
        """The coordinator's event loop lag over the cell (``awe_event_loop_lag_seconds``), as a note."""
        assert self.session is not None
        async with self.session.get(f"{self.url}/metrics", timeout=aiohttp.ClientTimeout(total=10)) as r:
            text = await r.text()
        buckets = sorted(
            (float(labels["le"]), value)
            for family in text_string_to_metric_families(text)
            if family.name == "awe_event_loop_lag_seconds"
            for name, labels, value, *_ in family.samples
            if name.endswith("_bucket")
        )
        if not buckets or not buckets[-1][1]:
            return "event loop lag: not measured"
        total = buckets[-1][1]
        p99 = next(le for le, count in buckets if count >= 0.99 * total)
        worst = next(le for le, count in buckets if count >= total)
        return f"event loop lag ({int(total)} samples): p99 <= {p99 * 1000:g} ms, max <= {worst * 1000:g} ms"

    # -- the API -------------------------------------------------------------------------

    async def _post_run(self, graph_id: str, state: dict[str, Any], **extra: Any) -> tuple[int, dict[str, Any]]:
        assert self.session is not None
        body = {"graph_id": graph_id, "initial_state": state, **extra}
        async with self.session.post(f"{self.url}/graph/run", json=body) as r:
            return r.status, await r.json(content_type=None)

    async def _submit(self, graph_id: str, state: dict[str, Any], run_id: str) -> float:
        """Submit one run; the client's clock just before it asked, the start of that run's latency."""
        submitted = time.time()
        status, body = await self._post_run(graph_id, state, run_id=run_id)
        if status != 202:
            raise RuntimeError(f"POST /graph/run: {status} {body}")
        return submitted

    async def _probe_wait(self) -> bool:
        """Whether ``POST /graph/run`` takes ``"wait": true``: a 400 naming an unknown field says it does not."""
        status, body = await self._post_run("chain3" + self.chain_suffix, chain_state(16), wait=True)
        if status == 400 and "unknown field" in str(body.get("error", body)):
            return False
        if status not in (200, 201, 202):
            raise RuntimeError(f"POST /graph/run with wait: {status} {body}")
        if body.get("status") not in FINISHED:  # accepted but not waited for: poll to the end all the same
            await self._poll_finished(str(body["run_id"]))
            return False
        return True

    async def _poll_finished(self, run_id: str) -> dict[str, Any]:
        """``GET /graph/state/{id}`` every millisecond until the run's status is final."""
        assert self.session is not None
        deadline = time.monotonic() + RUN_TIMEOUT
        while time.monotonic() < deadline:
            async with self.session.get(f"{self.url}/graph/state/{run_id}") as r:
                run = await r.json()
            if run["status"] in FINISHED:
                return dict(run)
            await asyncio.sleep(POLL)
        raise TimeoutError(f"run {run_id} did not finish within {RUN_TIMEOUT}s")

    async def _run_to_result(self, graph_id: str, state: dict[str, Any]) -> dict[str, Any]:
        """One run, from submission to its final state in this client's hands."""
        if self.wait_supported:
            status, body = await self._post_run(graph_id, state, wait=True)
            if status in (200, 201) and body.get("status") in FINISHED:
                return body
            return await self._poll_finished(str(body["run_id"]))
        status, body = await self._post_run(graph_id, state)
        if status != 202:
            raise RuntimeError(f"POST /graph/run: {status} {body}")
        return await self._poll_finished(str(body["run_id"]))

    async def _active_runs(self) -> int:
        assert self.session is not None
        async with self.session.get(f"{self.url}/healthz") as r:
            return int((await r.json())["active_runs"])

    async def _until_idle(self, timeout: float) -> bool:
        """Until the coordinator has no active run, checked every 10 ms; False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self._active_runs() == 0:
                return True
            await asyncio.sleep(0.01)
        return False

    async def _until_written(self, prefix: str, runs: int, timeout: float = 30.0) -> None:
        """Until the SQLite file shows every run of the batch finished: the store commits behind the coordinator."""
        deadline = time.monotonic() + timeout
        sql = "SELECT COUNT(*) FROM runs WHERE run_id LIKE ? AND finished_at IS NOT NULL"
        while self._query(sql, f"{prefix}%")[0][0] < runs:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the runs of {prefix!r} were not all written within {timeout}s")
            await asyncio.sleep(0.01)

    def _query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read the engine's SQLite file without writing to it (WAL: it does not block the coordinator)."""
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    # -- the workloads -----------------------------------------------------------------

    async def chain(self, runs: int, text_bytes: int) -> list[tuple[float, float]]:
        """``runs`` chain10 runs submitted at once; each run's (submitted, finished) on the wall clock."""
        self._batch += 1
        prefix = f"chain-{self._batch}-{os.getpid()}-"
        ids = [f"{prefix}{i:05d}" for i in range(runs)]
        state = chain_state(text_bytes)
        graph_id = "chain10" + self.chain_suffix
        submitted = await asyncio.gather(*(self._submit(graph_id, state, run_id) for run_id in ids))
        if not await self._until_idle(IDLE_TIMEOUT):
            raise TimeoutError(f"{runs} chain runs did not finish within {IDLE_TIMEOUT}s")
        await self._until_written(prefix, runs)
        rows = self._query(
            "SELECT runs.run_id, status, finished_at, counter.value, visited.value FROM runs"
            " JOIN run_values AS counter ON counter.run_id = runs.run_id AND counter.key = 'counter'"
            " JOIN run_values AS visited ON visited.run_id = runs.run_id AND visited.key = 'visited'"
            " WHERE runs.run_id LIKE ?",
            f"{prefix}%",
        )
        finished = {}
        for run_id, status, finished_at, counter, visited in rows:
            if status != "completed":
                raise AssertionError(f"run {run_id} ended {status}")
            check_chain({"counter": json.loads(counter), "visited": json.loads(visited)}, CHAIN_LENGTH)
            finished[run_id] = timestamp(finished_at)
        return [(s, finished[run_id]) for s, run_id in zip(submitted, ids, strict=True)]

    async def chain3(self) -> None:
        run = await self._run_to_result("chain3" + self.chain_suffix, chain_state(16))
        check_chain(run["state"], 3)

    async def fanout(self, iterations: int) -> None:
        run = await self._run_to_result("fan8", {"iterations": iterations})
        if run["status"] != "completed" or len(run["state"]["values"]) != FAN_BRANCHES:
            raise AssertionError(f"fan8 run ended {run['status']}: {run.get('error')}")

    async def start_waiting(self, runs: int) -> None:
        """Submit ``runs`` sleep1 runs over HTTP, 100 connections at a time; returns when all are accepted."""
        await asyncio.gather(*(self._submit("sleep1", {}, f"wait-{i:06d}") for i in range(runs)))

    async def finished_waiting(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM runs WHERE graph_id = 'sleep1' AND status = 'completed'")[0][0])

    async def recovery(self, runs: int, cap: float) -> dict[str, Any]:
        """``runs`` chain10 runs; when a quarter of their steps are done, SIGKILL the coordinator and start another.

        Measured from the kill: the API answering again, every run that was unfinished at the kill
        having a newer step (or having finished), and every run finished. The workers are not
        touched: they reconnect to the new coordinator on their own.
        """
        assert self.engine is not None and self.engine.coordinator is not None
        state = chain_state(1024)
        await asyncio.gather(*(self._submit("chain10" + self.chain_suffix, state, f"rec-{i:05d}") for i in range(runs)))
        await self._until_steps(runs * CHAIN_LENGTH // 4, cap)
        killed = time.monotonic()
        await self.engine.stop_process(self.engine.coordinator, signal.SIGKILL)
        unfinished = "SELECT run_id, step_count FROM runs WHERE run_id LIKE 'rec-%' AND finished_at IS NULL"
        before = dict(self._query(unfinished))
        await self.engine.start_coordinator()
        api = time.monotonic() - killed
        self.pids.add(self.engine.coordinator.pid)
        moving, done = await self._watch_recovery(before, runs, killed, cap)
        return {
            "runs": runs,
            "unfinished_at_kill": len(before),
            "lost_at_kill": runs - len(self._query("SELECT run_id FROM runs WHERE run_id LIKE 'rec-%'")),
            "kill_to_resumed_s": round(api, 3),
            "kill_to_all_moving_s": moving,
            "kill_to_all_done_s": done,
        }

    async def _until_steps(self, steps: int, cap: float) -> None:
        """Until ``steps`` steps of the recovery runs are committed."""
        deadline = time.monotonic() + cap
        sql = "SELECT COALESCE(SUM(step_count), 0) FROM runs WHERE run_id LIKE 'rec-%'"
        while self._query(sql)[0][0] < steps and time.monotonic() < deadline:
            await asyncio.sleep(0.005)

    async def _watch_recovery(
        self, before: dict[str, int], runs: int, killed: float, cap: float
    ) -> tuple[float | None, float | None]:
        """Seconds from the kill until every run moved past its step at the kill, and until all finished."""
        moving = done = None
        deadline = killed + cap
        while time.monotonic() < deadline and done is None:
            rows = self._query("SELECT run_id, step_count, finished_at FROM runs WHERE run_id LIKE 'rec-%'")
            now = time.monotonic() - killed
            if moving is None and all(
                finished is not None or step_count > before.get(run_id, -1) for run_id, step_count, finished in rows
            ):
                moving = round(now, 3)
            if sum(finished is not None for _, _, finished in rows) == runs:
                done = round(now, 3)
            await asyncio.sleep(0.02)
        return moving, done
