"""Latency of two awe trees side by side: the same 3-node runs, one after another, alternating engines.

Usage: python bench/ab_latency.py TREE_A TREE_B [--runs 300] [--graphs chain3,chain3_inline]

Each tree (a folder holding an ``awe`` package, e.g. ``git archive HEAD awe | tar -x -C /tmp/a``) gets
its own engine (a coordinator and 2 workers, as ``compare.py`` starts them); run i goes to engine A,
run i+1 to B, and so on, so both see the same load from the rest of the machine. On a shared 2-core
machine, that is what makes a difference of a few tenths of a millisecond visible at all.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from harness import LocalEngine  # this script's folder is on sys.path


class TreeEngine(LocalEngine):
    def __init__(self, folder: Path, tree: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        super().__init__(folder, workers=2)
        self.env["PYTHONPATH"] = tree


async def one_run(session: aiohttp.ClientSession, url: str, graph_id: str = "chain3") -> float:
    body = {"graph_id": graph_id, "initial_state": {"counter": 0, "visited": [], "text": "x" * 16}, "wait": True}
    started = time.perf_counter()
    async with session.post(f"{url}/graph/run", json=body) as response:
        answer = await response.json()
    elapsed = time.perf_counter() - started
    if answer.get("status") != "completed":
        raise RuntimeError(f"run did not complete: {answer}")
    return elapsed * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs=2)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument(
        "--graphs",
        default="chain3,chain3",
        help="the graph run on A and on B (chain3_inline: nodes inline; chain3_async: async def nodes)",
    )
    args = parser.parse_args()
    graph_a, graph_b = args.graphs.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            TreeEngine(Path(tmp) / "a", args.trees[0]) as a,
            TreeEngine(Path(tmp) / "b", args.trees[1]) as b,
            aiohttp.ClientSession() as session,
        ):
            times: dict[str, list[float]] = {"A": [], "B": []}
            for _ in range(5):  # warm-up
                await one_run(session, a.url, graph_a)
                await one_run(session, b.url, graph_b)
            for _ in range(args.runs):
                times["A"].append(await one_run(session, a.url, graph_a))
                times["B"].append(await one_run(session, b.url, graph_b))
    for name, tree in zip("AB", (f"{args.trees[0]} {graph_a}", f"{args.trees[1]} {graph_b}"), strict=True):
        figures = sorted(times[name])
        p50, p90 = statistics.median(figures), figures[int(len(figures) * 0.9)]
        print(f"{name} {tree}: p50 {p50:.2f} ms, p90 {p90:.2f} ms, p99 {figures[int(len(figures) * 0.99)]:.2f} ms")
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
