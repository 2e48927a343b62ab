"""Throughput of persisted node-steps: N concurrent runs of a 10-node chain on 2 workers.

Usage: python bench/chain_throughput.py [--runs 500] [--workers 2] [--capacity 4]

Starts ``awe coordinator`` and the workers as real processes on free loopback
ports with a fresh SQLite file, submits every run at once over HTTP, waits
until the coordinator reports no active run, then reads the runs' own
timestamps from the database: every step counted here was committed before
the next one was dispatched.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from harness import LocalEngine  # this script's folder is on sys.path
from harness import timestamp as ts

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far: a figure the other load on the machine barely moves."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--capacity", type=int, default=4)
    parser.add_argument(
        "--graph", default="chain10", help="chain10, chain10_inline (its nodes inline), chain10_async (async def nodes)"
    )
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="awe-bench-"))
    async with LocalEngine(folder, workers=args.workers, capacity=args.capacity) as engine:
        state = {"counter": 0, "visited": [], "text": "x" * 1024}
        assert engine.coordinator is not None
        coordinator_pid, worker_pids = engine.coordinator.pid, [w.pid for w in engine.workers]
        cpu_before = cpu_seconds(coordinator_pid), sum(map(cpu_seconds, worker_pids))
        started = time.perf_counter()
        run_ids = await asyncio.gather(*(engine.start_run(args.graph, state) for _ in range(args.runs)))
        submitted = time.perf_counter()
        assert engine.session is not None
        while True:
            async with engine.session.get(f"{engine.url}/healthz") as r:
                if (await r.json())["active_runs"] == 0:
                    break
            await asyncio.sleep(0.05)
        wall = time.perf_counter() - started
        cpu_after = cpu_seconds(coordinator_pid), sum(map(cpu_seconds, worker_pids))
    db = engine.db

    con = sqlite3.connect(db)
    rows = con.execute(
        "SELECT status, step_count, created_at, finished_at, value FROM runs"
        " LEFT JOIN run_values ON run_values.run_id = runs.run_id AND key = 'counter'"
    ).fetchall()
    steps = con.execute("SELECT COUNT(*) FROM steps WHERE status = 'completed'").fetchone()[0]
    con.close()
    assert len(rows) == args.runs == len(set(run_ids))
    bad = [r for r in rows if r[0] != "completed" or r[1] != 10 or r[4] != "10"]
    assert not bad, f"{len(bad)} runs did not complete correctly: {bad[:3]}"
    first = min(ts(r[2]) for r in rows)
    last = max(ts(r[3]) for r in rows)
    latencies = sorted((ts(r[3]) - ts(r[2])) * 1000 for r in rows)
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"runs: {args.runs} x 10 nodes, workers: {args.workers} (capacity {args.capacity})")
    print(f"persisted node-steps: {steps} in {last - first:.2f}s -> {steps / (last - first):,.0f} steps/s")
    print(f"submit time for all runs: {submitted - started:.2f}s; wall incl. polling: {wall:.2f}s")
    print(f"run latency: p50 {p50:,.0f} ms, p99 {p99:,.0f} ms")
    coordinator_ms, workers_ms = (
        (after - before) * 1000 / steps for before, after in zip(cpu_before, cpu_after, strict=True)
    )
    print(f"CPU per step: coordinator {coordinator_ms:.3f} ms, workers {workers_ms:.3f} ms (all of them)")


if __name__ == "__main__":
    asyncio.run(main())
