"""Fan-out speed: 8 CPU-bound branches (~100 ms of pure Python each), then a join, on 2 workers vs 1.

Usage: python bench/fan_out.py [--runs 5] [--branch-ms 100]

Calibrates the branch work in this process, then for 2 workers and for 1
worker starts a coordinator and the workers on free loopback ports, runs the
``fan8`` graph ``--runs`` times one after another, and reads each run's
duration (created to finished) from the API. On 2 cores the ideal with 2
workers is 8 x 100 ms / 2 = 400 ms per run.

A shared machine does not always give two processes two cores' worth of
CPU, so right before each run the same 8 pieces of work also run on a plain
``multiprocessing`` pool of as many processes: the ratio to that baseline is
the engine's own overhead, measured under the same conditions.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path

from bench_graphs import FAN_BRANCHES, burn  # this script's folder is on sys.path
from harness import LocalEngine, timestamp


def calibrate(target_ms: float) -> int:
    """Iterations of ``burn`` that take ``target_ms`` here (best of three, to dodge noise)."""
    probe = 200_000
    best = min(_timed(probe) for _ in range(3))
    return int(probe * target_ms / 1000 / best)


def _timed(iterations: int) -> float:
    started = time.perf_counter()
    burn(iterations)
    return time.perf_counter() - started


def _seconds(run: dict) -> float:
    return timestamp(run["finished_at"]) - timestamp(run["created_at"])


def baseline(pool: multiprocessing.pool.Pool, iterations: int) -> float:
    """Seconds a plain process pool takes for the same work."""
    started = time.perf_counter()
    pool.map(burn, [iterations] * FAN_BRANCHES, chunksize=1)
    return time.perf_counter() - started


async def measure(workers: int, runs: int, iterations: int) -> tuple[list[float], list[float]]:
    """Each run's duration on the engine, and the plain pool's time for the same work just before it."""
    with tempfile.TemporaryDirectory(prefix="awe-fan-") as folder, multiprocessing.Pool(workers) as pool:
        async with LocalEngine(Path(folder), workers=workers) as engine:
            await engine.wait_finished(await engine.start_run("fan8", {"iterations": 1000}))  # warm up
            baseline(pool, 1000)
            durations, baselines = [], []
            for _ in range(runs):
                baselines.append(baseline(pool, iterations))
                run = await engine.wait_finished(await engine.start_run("fan8", {"iterations": iterations}))
                assert run["status"] == "completed" and len(run["state"]["values"]) == FAN_BRANCHES, run
                durations.append(_seconds(run))
            return durations, baselines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--branch-ms", type=float, default=100.0)
    args = parser.parse_args()

    iterations = calibrate(args.branch_ms)
    ideal = FAN_BRANCHES * args.branch_ms / 1000 / 2
    two, two_base = await measure(2, args.runs, iterations)
    one, one_base = await measure(1, args.runs, iterations)
    median = statistics.median
    print(
        f"fan8: {FAN_BRANCHES} branches x {args.branch_ms:g} ms CPU ({iterations:,} iterations), then a join; "
        f"{args.runs} runs each"
    )
    for label, durations, base in (("2 workers", two, two_base), ("1 worker ", one, one_base)):
        print(
            f"{label}: "
            + " ".join(f"{d * 1000:.0f}" for d in durations)
            + f" ms (median {median(durations) * 1000:.0f});"
            f" plain pool: " + " ".join(f"{b * 1000:.0f}" for b in base) + f" ms (median {median(base) * 1000:.0f})"
        )
    print(f"2 workers vs the ideal {ideal * 1000:.0f} ms: {median(two) / ideal:.2f}x")
    print(f"2 workers vs a plain 2-process pool: {median([d / b for d, b in zip(two, two_base, strict=True)]):.2f}x")
    print(f"1 worker / 2 workers: {median(one) / median(two):.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
