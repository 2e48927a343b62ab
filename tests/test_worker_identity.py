"""Without CURVE (a loopback worker socket): a connected worker's identity cannot be taken over.

ZeroMQ ignores a second connection that claims the identity of a connected worker
(``ROUTER_HANDOVER`` off), so an intruder can neither cut the worker off nor answer for it; a worker
that comes back after its old connection closed (a restart under the same ``--worker-id``) gets in.
"""

from __future__ import annotations

import asyncio
import signal

from engine import Engine
from zmq_peers import log_events, raw_peer, replies

from awe.transport.messages import Goodbye, Heartbeat, Hello, JobDone


async def _running_job(engine: Engine, run_id: str) -> tuple[str, str]:
    """The worker running ``run_id``'s job and the job's id, from the workers' log files."""
    found: list[tuple[str, str]] = []

    async def received() -> bool:
        for worker in ("w1", "w2"):
            for event in log_events(engine.log_dir, f"worker-{worker}"):
                if event["event"] == "job_received" and event.get("run_id") == run_id:
                    found.append((worker, event["job_id"]))
        return bool(found)

    await engine.wait_until(received, what=f"a worker to receive the job of {run_id}")
    return found[0]


async def test_a_peer_reusing_a_connected_workers_identity_gets_nothing_and_changes_nothing(
    process_engine: Engine,
) -> None:
    engine = process_engine
    run_id = await engine.start_run("slow", {"seconds": 2})
    worker_id, job_id = await _running_job(engine, run_id)
    forged = JobDone(job_id=job_id, run_id=run_id, delta={"slept": -1, "finished_by": "forger"})
    hello = Hello(worker_id=worker_id, pid=1, host="x", capacity=8, graphs={"slow": "forged"})
    with raw_peer(engine.bind, worker_id.encode()) as impostor, raw_peer(engine.bind, b"stranger") as stranger:
        impostor.send(forged.encode())
        impostor.send(hello.encode())
        impostor.send(Heartbeat(sender=worker_id, running=0).encode())
        impostor.send(Goodbye(worker_id=worker_id).encode())  # would send the real worker's jobs elsewhere
        # An unknown identity's result, then its Hello: it joins (no CURVE), but the job is not its own.
        stranger.send(forged.encode())
        stranger.send(Hello(worker_id="stranger", pid=2, host="x", capacity=1, graphs={}).encode())
        got, _ = await asyncio.gather(replies(impostor, 1.5), replies(stranger, 0.5))
    assert got == []
    final = await engine.wait_finished(run_id)
    assert final["status"] == "completed"
    assert final["state"] == {"seconds": 2, "slept": 2, "finished_by": worker_id, "after": True}
    # The real worker is still connected, and still works.
    workers = {w["worker_id"]: w for w in await engine.workers_info()}
    assert {"w1", "w2"} <= set(workers)
    before = workers[worker_id]["jobs_done"]
    runs = [await engine.start_run("counter_loop", {"count": 0, "target": 3}) for _ in range(4)]
    for run in runs:
        assert (await engine.wait_finished(run))["status"] == "completed"
    after = {w["worker_id"]: w for w in await engine.workers_info()}[worker_id]
    assert after["jobs_done"] > before


async def test_a_worker_restarted_under_the_same_identity_gets_back_in(process_engine: Engine) -> None:
    """Its old connection closed with its process, so the identity is free for the new one."""
    engine = process_engine
    first, second = engine.workers
    assert await engine.stop_process(first, signal.SIGKILL) == -signal.SIGKILL
    engine.start_worker(worker_id="w1")

    async def back() -> bool:
        return any(w["worker_id"] == "w1" and w["pid"] != first.pid for w in await engine.workers_info())

    await engine.wait_until(back, what="w1 to rejoin under its old identity")
    await engine.stop_process(second)
    run_id = await engine.start_run("counter_loop", {"count": 0, "target": 3})
    assert (await engine.wait_finished(run_id))["status"] == "completed"
    assert {step["worker_id"] for step in await engine.steps(run_id)} == {"w1"}


async def test_a_worker_that_connected_while_its_old_connection_hung_gets_in_once_it_is_gone(
    process_engine: Engine,
) -> None:
    """A frozen w1 holds its identity; a new w1 is ignored until the coordinator's ZeroMQ heartbeat drops
    the frozen connection, then connects afresh (the coordinator stays silent to it) and joins."""
    engine = process_engine
    frozen = engine.workers[0]
    engine.send_signal(frozen, signal.SIGSTOP)
    try:
        engine.start_worker(worker_id="w1")

        async def replaced() -> bool:
            return any(w["worker_id"] == "w1" and w["pid"] != frozen.pid for w in await engine.workers_info())

        await engine.wait_until(replaced, what="the new w1 to join", timeout=30)
        # The frozen process holds worker-w1.jsonl, so the new one writes worker-w1-<pid>.jsonl.
        logs = engine.log_dir
        new_log = [e for path in logs.glob("worker-w1-*.jsonl") for e in log_events(logs, path.stem)]
        assert any(e["event"] == "reconnecting" for e in new_log)
    finally:
        engine.send_signal(frozen, signal.SIGKILL)
    await engine.wait_exit(frozen)
    run_id = await engine.start_run("counter_loop", {"count": 0, "target": 3})
    assert (await engine.wait_finished(run_id))["status"] == "completed"
