"""A background task that dies is loud: /healthz answers 503 naming it, the process exits 70, and
a restarted process (by ``awe up`` or by hand) carries on from the store.

The faults are injected by ``fault_graphs.py``, loaded with ``--graphs`` in the coordinator only
for these tests: each makes a loop raise once, outside its per-job and per-record handling.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import aiohttp
from engine import Engine, start_awe_up

from awe.exit_codes import EXIT_SOFTWARE


async def _health(session: aiohttp.ClientSession, url: str) -> tuple[int, dict]:
    async with session.get(f"{url}/healthz") as r:
        return r.status, await r.json()


async def _wait_for_failed_health(session: aiohttp.ClientSession, url: str, task: str) -> dict:
    """Poll /healthz until it names ``task`` as failed (the process drains meanwhile, so it answers)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            status, body = await _health(session, url)
            if task in body.get("failed_tasks", {}):
                assert status == 503, body
                assert body["status"] == "failed"
                return body
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.02)
    raise AssertionError(f"/healthz never named {task!r} as failed")


async def test_a_dying_store_writer_makes_healthz_503_and_the_coordinator_exit_70(tmp_path: Path) -> None:
    fault = tmp_path / "fault"
    engine = Engine(tmp_path, graphs=("sample_graphs", "fault_graphs"), env={"AWE_TEST_FAULT_FILE": str(fault)})
    try:
        await engine.start(workers=1)
        slow_run = await engine.start_run("slow", {"seconds": 2})  # keeps the drain, and so /healthz, going
        await engine.wait_until(lambda: _in_flight(engine, 1), what="the slow job to be in flight")
        fault.write_text("store")
        assert engine.session is not None
        poke = asyncio.ensure_future(engine.request("POST", "/graph/run", json={"graph_id": "counter_loop"}))
        body = await _wait_for_failed_health(engine.session, engine.url, "store-writer")
        assert "injected fault in the store writer" in body["failed_tasks"]["store-writer"]
        assert engine.coordinator is not None
        assert await engine.wait_exit(engine.coordinator, timeout=30) == EXIT_SOFTWARE
        poke.cancel()
        await asyncio.gather(poke, return_exceptions=True)
        log = (engine.log_dir / "coordinator.jsonl").read_text()
        died = [json.loads(line) for line in log.splitlines() if '"background_task_died"' in line]
        assert died and "Traceback" in died[0]["exception"] and died[0]["task"] == "store-writer"

        await engine.start_coordinator()  # a fresh coordinator recovers the run from the store
        assert (await engine.wait_finished(slow_run))["status"] == "completed"
        run_id = await engine.start_run("counter_loop", {"count": 0, "target": 2})
        assert (await engine.wait_finished(run_id))["status"] == "completed"
    finally:
        await engine.close()


async def _in_flight(engine: Engine, count: int) -> bool:
    return sum(w["in_flight"] for w in await engine.workers_info()) >= count


async def test_a_dying_dispatch_loop_makes_awe_up_restart_the_coordinator(tmp_path: Path) -> None:
    fault = tmp_path / "fault"
    proc, url = start_awe_up(
        tmp_path,
        "--workers",
        "1",
        "--graphs",
        "sample_graphs",
        "--graphs",
        "fault_graphs",
        "--heartbeat-interval",
        "0.2",
        stdout=subprocess.PIPE,
        env={"AWE_TEST_FAULT_FILE": str(fault)},
    )
    try:
        async with aiohttp.ClientSession() as session:
            first = await _wait_healthy(session, url, workers=1)
            slow_run = await _start(session, url, "slow", {"seconds": 2})
            fault.write_text("dispatch")
            second_run = await _start(session, url, "counter_loop", {"count": 0, "target": 2})
            body = await _wait_for_failed_health(session, url, "dispatch-pump")
            assert body["coordinator_id"] == first["coordinator_id"]
            assert "injected fault in the dispatch loop" in body["failed_tasks"]["dispatch-pump"]

            again = await _wait_healthy(session, url, workers=1)  # awe up started a new coordinator
            assert again["coordinator_id"] != first["coordinator_id"]
            for run_id in (slow_run, second_run):
                assert await _wait_status(session, url, run_id) == "completed"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            output, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert f"coordinator exited with code {EXIT_SOFTWARE}; restarting in 1s" in output, output


async def _wait_healthy(session: aiohttp.ClientSession, url: str, *, workers: int) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            status, body = await _health(session, url)
            if status == 200 and body["workers"] >= workers:
                return body
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("awe up did not become healthy")


async def _start(session: aiohttp.ClientSession, url: str, graph_id: str, state: dict) -> str:
    async with session.post(f"{url}/graph/run", json={"graph_id": graph_id, "initial_state": state}) as r:
        assert r.status == 202, await r.text()
        return str((await r.json())["run_id"])


async def _wait_status(session: aiohttp.ClientSession, url: str, run_id: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            async with session.get(f"{url}/graph/state/{run_id}") as r:
                if r.status == 200 and (status := (await r.json())["status"]) in ("completed", "failed"):
                    return str(status)
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish")
