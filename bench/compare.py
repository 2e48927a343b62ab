"""awe against LangGraph, DBOS, Celery and Dask: the same workloads, on this machine, in one table.

Usage: python bench/compare.py [--only awe,langgraph,...] [--workloads chain10,latency,...] [--quick]
                               [--json PATH] [--table-from PATH]

Each (engine, workload) pair is a "cell" and runs in a fresh child process of this script
(``--cell``), so that one engine's memory, threads or global state never reach the next one's
figures, and so that a cell that hangs is killed after its time limit. A cell starts its engine on
loopback, records every process it starts (pid and start time) in a file, runs the workload and
stops the engine; afterwards this script kills anything of it still alive, by pid. The figures
go to a JSON file after every cell, and the table is printed at the end (``--table-from`` prints
it again from a JSON file). ``bench/README.md`` says what each workload measures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import multiprocessing
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engines import Engine  # this script's folder is on sys.path
from engines.common import (
    BENCH,
    CHAIN_LENGTH,
    FAN_BRANCHES,
    FULL,
    QUICK,
    SMALL_TEXT,
    PidLog,
    RssSampler,
    Scale,
    leftovers,
    percentile,
)

ENGINES: dict[str, tuple[str, str, dict[str, Any], str]] = {
    "awe": ("engines.awe_engine", "AweEngine", {}, "awe (SQLite, every step)"),
    "awe-full": (
        "engines.awe_engine",
        "AweEngine",
        {"durability": "full"},
        "awe --durability full (every commit synced: survives power loss)",
    ),
    "awe-inline": (
        "engines.awe_engine",
        "AweEngine",
        {"nodes": "inline"},
        "awe, the chains' nodes inline=True (on the workers' event loops)",
    ),
    "awe-async": (
        "engines.awe_engine",
        "AweEngine",
        {"nodes": "async"},
        "awe, the chains' nodes async def (coroutines on the workers' event loops)",
    ),
    "langgraph-sqlite": (
        "engines.langgraph_engine",
        "LangGraphEngine",
        {"durable": True},
        "LangGraph + AsyncSqliteSaver (sync)",
    ),
    "langgraph": ("engines.langgraph_engine", "LangGraphEngine", {"durable": False}, "LangGraph, no checkpointer"),
    "dbos": ("engines.dbos_engine", "DbosEngine", {}, "DBOS (SQLite)"),
    "celery": ("engines.celery_engine", "CeleryEngine", {}, "Celery + Redis (memory)"),
    "dask": ("engines.dask_engine", "DaskEngine", {}, "Dask distributed (memory)"),
}
"""name -> (module, class, keyword arguments, the table's column header, which says what is durable)."""

NOT_MEANINGFUL = {
    ("recovery", "langgraph"): "nothing is persisted, so nothing is recovered",
    ("recovery", "celery"): "its broker and results live in a Redis without persistence (as set up here): "
    "a killed broker loses every run",
    ("recovery", "dask"): "the scheduler holds the task graph in memory only: a killed scheduler loses every run",
}
"""Cells that are not run, and why (the table says so instead of a figure)."""


# -- the workloads, timed the same way for every engine --------------------------------------


def chain_figures(times: list[tuple[float, float]]) -> dict[str, Any]:
    """Steps per second over the batch's wall time, and the runs' latencies (submitted -> finished)."""
    first = min(s for s, _ in times)
    last = max(f for _, f in times)
    latencies = [(f - s) * 1000 for s, f in times]
    steps = len(times) * CHAIN_LENGTH
    return {
        "runs": len(times),
        "steps": steps,
        "wall_s": round(last - first, 3),
        "steps_per_s": round(steps / (last - first), 1),
        "p50_ms": round(percentile(latencies, 0.5), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
    }


async def chain10(engine: Engine, scale: Scale, iterations: int) -> dict[str, Any]:
    """Many runs at once: what the engine's bookkeeping per step costs when it is the bottleneck."""
    return chain_figures(await engine.chain(scale.chain_runs, SMALL_TEXT))


async def latency(engine: Engine, scale: Scale, iterations: int) -> dict[str, Any]:
    """One short run at a time: the engine's round trips, with no queue to hide them."""
    for _ in range(3):  # warm-up: connections, imports, first-use caches
        await engine.chain3()
    times = []
    for _ in range(scale.latency_runs):
        started = time.perf_counter()
        await engine.chain3()
        times.append((time.perf_counter() - started) * 1000)
    return {
        "runs": len(times),
        "p50_ms": round(percentile(times, 0.5), 2),
        "p99_ms": round(percentile(times, 0.99), 2),
        "mean_ms": round(statistics.mean(times), 2),
    }


def _burn_on_pool(iterations: int) -> float:
    """Seconds a plain 2-process pool takes for the same 8 pieces of work: what this machine gives right now."""
    from bench_graphs import burn

    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(burn, [1000] * 2)  # the processes are up before the clock starts
        started = time.perf_counter()
        pool.map(burn, [iterations] * FAN_BRANCHES, chunksize=1)
        return time.perf_counter() - started


async def fanout_cpu(engine: Engine, scale: Scale, iterations: int) -> dict[str, Any]:
    """8 CPU-bound branches then a join: whether the engine puts both cores to work, per run."""
    await engine.fanout(1000)  # warm-up
    walls, pools = [], []
    for _ in range(scale.fanout_runs):
        pools.append(await asyncio.to_thread(_burn_on_pool, iterations) * 1000)
        started = time.perf_counter()
        await engine.fanout(iterations)
        walls.append((time.perf_counter() - started) * 1000)
    ideal = FAN_BRANCHES * scale.branch_ms / 2
    median = statistics.median(walls)
    return {
        "runs_ms": [round(w, 1) for w in walls],
        "median_ms": round(median, 1),
        "ideal_ms": ideal,
        "vs_ideal": round(median / ideal, 2),
        "plain_pool_median_ms": round(statistics.median(pools), 1),
        "vs_plain_pool": round(median / statistics.median(pools), 2),
    }


async def many_waiting(engine: Engine, scale: Scale, iterations: int) -> dict[str, Any]:
    """10,000 runs that each wait 1 s: how many the engine keeps waiting at once, and at what memory."""
    started = time.monotonic()
    submitting = asyncio.create_task(engine.start_waiting(scale.waiting_runs))
    deadline = started + scale.waiting_cap_s
    finished, wall, submitted_s = 0, None, None
    try:
        while time.monotonic() < deadline:
            if submitting.done() and submitted_s is None:
                submitting.result()  # a failed submission fails the cell
                submitted_s = round(time.monotonic() - started, 2)
            finished = await engine.finished_waiting()
            if finished >= scale.waiting_runs:
                wall = round(time.monotonic() - started, 2)
                break
            await asyncio.sleep(0.1)
    finally:
        if not submitting.done():
            submitting.cancel()
            await asyncio.gather(submitting, return_exceptions=True)
    return {
        "runs": scale.waiting_runs,
        "finished": finished,
        "wall_s": wall,
        "cap_s": scale.waiting_cap_s,
        "all_submitted_after_s": submitted_s,
    }


async def big_state(engine: Engine, scale: Scale, iterations: int) -> dict[str, Any]:
    """The same chain with 1 MB riding along untouched, against 1 KiB, at the same number of runs."""
    small = chain_figures(await engine.chain(scale.big_runs, SMALL_TEXT))
    big = chain_figures(await engine.chain(scale.big_runs, scale.big_bytes))
    return {
        "runs": scale.big_runs,
        "bytes": scale.big_bytes,
        "steps_per_s": big["steps_per_s"],
        "small_steps_per_s": small["steps_per_s"],
        "vs_small": round(big["steps_per_s"] / small["steps_per_s"], 3),
        "big": big,
        "small": small,
    }


async def recovery(engine: Engine, scale: Scale, iterations: int) -> dict[str, Any]:
    """Runs in flight, the engine's process killed and started again: how long until they all move and finish."""
    return dict(await engine.recovery(scale.recovery_runs, scale.recovery_cap_s))


WORKLOADS: dict[str, Callable[[Engine, Scale, int], Awaitable[dict[str, Any]]]] = {
    "chain10": chain10,
    "latency": latency,
    "fanout_cpu": fanout_cpu,
    "many_waiting": many_waiting,
    "big_state": big_state,
    "recovery": recovery,
}


def cell_timeout(workload: str, scale: Scale) -> float:
    """How long a cell may take before it is killed: its own cap plus room to start and stop the engine."""
    if workload == "many_waiting":
        return scale.waiting_cap_s + 180
    if workload == "recovery":
        return 2 * scale.recovery_cap_s + 180
    return 900.0


# -- one cell, in its own process --------------------------------------------------------------


def make_engine(name: str) -> Engine:
    """The engine's class, imported only now: a peer that is not installed fails its own cells, not the script."""
    module, cls, kwargs, _ = ENGINES[name]
    return getattr(importlib.import_module(module), cls)(**kwargs)


async def run_cell(name: str, workload: str, scale: Scale, iterations: int, folder: Path) -> dict[str, Any]:
    """Start the engine, run the workload while sampling the engine's memory, stop the engine."""
    pids = PidLog(folder / "pids")
    engine = make_engine(name)
    try:
        await engine.start(folder, pids)
        sampler = RssSampler(engine.processes, pids)
        sampler.start()
        try:
            figures = await WORKLOADS[workload](engine, scale, iterations)
        finally:
            figures_rss = sampler.stop()
    finally:
        await engine.stop()
    return {**figures, "peak_rss_mb": figures_rss, "notes": engine.notes}


def cell_main(args: argparse.Namespace) -> int:
    """``--cell ENGINE WORKLOAD``: run one cell and write its figures (or its error) to ``--out``."""
    name, workload = args.cell
    folder = Path(args.folder)
    scale = Scale(**json.loads(args.scale))
    try:
        result = asyncio.run(run_cell(name, workload, scale, args.iterations, folder))
    except ImportError as exc:
        result = {"error": f"not installed: {exc}"}
    except Exception as exc:
        traceback.print_exc()
        result = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


# -- the comparison ----------------------------------------------------------------------------


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (every core, every process), from /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_seconds() -> float:
    """CPU seconds of this process and of every descendant it has waited for (a cell and all it started)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def spawn_cell(name: str, workload: str, scale: Scale, iterations: int, workdir: Path) -> dict[str, Any]:
    """Run one cell, and say how much CPU the rest of the machine used meanwhile (another job skews a figure)."""
    busy, own, started = busy_seconds(), own_seconds(), time.monotonic()
    result = run_cell_process(name, workload, scale, iterations, workdir)
    foreign = (busy_seconds() - busy) - (own_seconds() - own)
    result["other_cpu_share"] = round(max(foreign, 0) / ((os.cpu_count() or 1) * (time.monotonic() - started)), 3)
    return result


def run_cell_process(name: str, workload: str, scale: Scale, iterations: int, workdir: Path) -> dict[str, Any]:
    """Run one cell as a child process; kill it after its time limit, then anything it left behind."""
    folder = workdir / f"{workload}-{name}"
    folder.mkdir(parents=True)
    out = folder / "result.json"
    argv = [sys.executable, str(Path(__file__).resolve()), "--cell", name, workload, "--folder", str(folder)]
    argv += ["--scale", json.dumps(asdict(scale)), "--iterations", str(iterations), "--out", str(out)]
    timeout = cell_timeout(workload, scale)
    started = time.monotonic()
    with open(folder / "cell.log", "wb") as log:
        proc = subprocess.Popen(argv, cwd=BENCH, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        proc.wait(timeout=timeout)
        result = json.loads(out.read_text()) if out.exists() else {"error": f"the cell exited {proc.returncode}"}
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        result = {"error": f"killed after {timeout:.0f}s"}
    left = leftovers(folder / "pids")
    deadline = time.monotonic() + 5  # a worker may still be on its way out when the cell itself has exited
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = leftovers(folder / "pids")
    for p in left:
        with contextlib.suppress(Exception):
            p.kill()
    if left:
        names = ", ".join(sorted({p.name() for p in left if p.is_running()} or {"?"}))
        note = f"{len(left)} processes outlived the cell by 5 s and were killed: {names}"
        result.setdefault("notes", []).append(note)
    result["cell_seconds"] = round(time.monotonic() - started, 1)
    return result


def calibrated_iterations(branch_ms: float) -> int:
    """Iterations of ``burn`` that take ``branch_ms`` on this machine, measured once for every engine."""
    from fan_out import calibrate

    return calibrate(branch_ms)


def awe_version() -> str:
    """Which awe was measured: its folder, and the commit (with "+ uncommitted changes") when it is a git work tree.

    A copy of a commit (``git archive``) is not a work tree: then ``AWE_BENCH_COMMIT`` names it.
    """
    import awe

    folder = Path(awe.__file__).resolve().parent
    git = ["git", "-C", str(folder)]
    try:
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run([*git, "status", "--porcelain", "--", "."], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return f"{folder} at {os.environ.get('AWE_BENCH_COMMIT', 'an unknown commit')}"
    return f"{folder} at {commit.stdout.strip()}{' + uncommitted changes' if dirty.stdout.strip() else ''}"


BUSY_SHARE = 0.05
"""Above this share of the machine's CPU used by other processes during a cell, its figures are suspect."""


def wait_quiet(limit: float = 180.0, window: float = 3.0) -> float:
    """Until the machine's other processes use under BUSY_SHARE of its CPU over ``window`` s (at most ``limit`` s).

    Between cells this script itself is idle, so whatever is busy is someone else. Returns that share.
    """
    deadline = time.monotonic() + limit
    while True:
        busy = busy_seconds()
        time.sleep(window)
        share = (busy_seconds() - busy) / ((os.cpu_count() or 1) * window)
        if share < BUSY_SHARE or time.monotonic() > deadline:
            return round(share, 3)


def measured_cell(
    name: str, workload: str, scale: Scale, iterations: int, workdir: Path, *, tries: int
) -> dict[str, Any]:
    """A cell run on a quiet machine if possible: again (up to ``tries`` times) when others were busy meanwhile.

    Keeps the try with the least CPU used by other processes; the table marks a cell whose best
    try was still disturbed.
    """
    best: dict[str, Any] | None = None
    for attempt in range(1, tries + 1):
        wait_quiet()
        cell = spawn_cell(name, workload, scale, iterations, workdir / f"try{attempt}")
        cell["tries"] = attempt
        if best is None or cell["other_cpu_share"] < best["other_cpu_share"]:
            best = cell
        if cell["other_cpu_share"] <= BUSY_SHARE or "error" in cell:
            break
        print(f"   other processes used {cell['other_cpu_share']:.0%} of the CPU meanwhile; again", file=sys.stderr)
    assert best is not None
    return best


def compare(args: argparse.Namespace) -> dict[str, Any]:
    """Every requested cell, one after another; the JSON file is rewritten after each."""
    scale = QUICK if args.quick else FULL
    iterations = calibrated_iterations(scale.branch_ms)
    if args.keep and Path(args.json).exists():
        return rerun(args, json.loads(Path(args.json).read_text()), scale, iterations)
    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores (shared), {platform.python_implementation()} {platform.python_version()}",
        "quick": args.quick,
        "awe": awe_version(),
        "scale": asdict(scale),
        "burn_iterations": iterations,
        "engines": {name: ENGINES[name][3] for name in args.only},
        "cells": {},
    }
    return run_cells(args, results, scale, iterations)


def rerun(args: argparse.Namespace, results: dict[str, Any], scale: Scale, iterations: int) -> dict[str, Any]:
    """``--keep``: run the requested cells again into an earlier run's figures, and say so in them."""
    if results["quick"] != args.quick:
        raise SystemExit(f"{args.json} was {'' if results['quick'] else 'not '}a --quick run")
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    results.setdefault("reruns", []).append(
        {"date": stamp, "awe": awe_version(), "engines": args.only, "workloads": args.workloads}
    )
    return run_cells(args, results, scale, iterations)


def run_cells(args: argparse.Namespace, results: dict[str, Any], scale: Scale, iterations: int) -> dict[str, Any]:
    """Every requested cell, one after another; the JSON file is rewritten after each."""
    workdir = Path(tempfile.mkdtemp(prefix="awe-compare-"))
    results["workdir"] = str(workdir)
    for workload in args.workloads:
        row = results["cells"].setdefault(workload, {})
        for name in args.only:
            reason = NOT_MEANINGFUL.get((workload, name))
            print(f"== {workload} / {name}", file=sys.stderr, flush=True)
            if reason:
                row[name] = {"skipped": reason}
            else:
                row[name] = measured_cell(name, workload, scale, iterations, workdir, tries=args.tries)
            print(f"   {json.dumps(row[name])[:300]}", file=sys.stderr, flush=True)
            Path(args.json).write_text(json.dumps(results, indent=1))
    return results


# -- the table -----------------------------------------------------------------------------

HIGHER, LOWER, NEUTRAL = "higher", "lower", "neutral"

ROWS: list[tuple[str, str, str, str]] = [
    ("chain10", "node-steps/s", "steps_per_s", HIGHER),
    ("chain10", "p50 run latency, ms", "p50_ms", LOWER),
    ("chain10", "p99 run latency, ms", "p99_ms", LOWER),
    ("latency", "p50, ms", "p50_ms", LOWER),
    ("latency", "p99, ms", "p99_ms", LOWER),
    ("fanout_cpu", "median wall per run, ms", "median_ms", LOWER),
    ("fanout_cpu", "vs ideal on 2 cores", "vs_ideal", NEUTRAL),
    ("many_waiting", "runs finished within the cap", "finished", HIGHER),
    ("many_waiting", "wall to finish all, s", "wall_s", LOWER),
    ("many_waiting", "peak RSS of the engine, MB", "peak_rss_mb", LOWER),
    ("big_state", "node-steps/s with 1 MB", "steps_per_s", HIGHER),
    ("big_state", "1 MB vs 1 KiB", "vs_small", NEUTRAL),
    ("recovery", "runs unfinished at the kill", "unfinished_at_kill", NEUTRAL),
    ("recovery", "runs lost (not recorded at the kill)", "lost_at_kill", NEUTRAL),
    ("recovery", "kill -> engine back, s", "kill_to_resumed_s", LOWER),
    ("recovery", "kill -> every run moving, s", "kill_to_all_moving_s", LOWER),
    ("recovery", "kill -> every run done, s", "kill_to_all_done_s", LOWER),
]
"""(workload, what, figure, which way is better): one line of the table each."""


def fmt(value: Any) -> str:
    """Two decimals below 10 (latencies in ms, ratios), none above (steps/s, MB): as precise as the noise allows."""
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def cell_text(cell: dict[str, Any] | None, key: str) -> str:
    """A figure as the table shows it, or why there is none."""
    if cell is None:
        return "not run"
    if "skipped" in cell:
        return "n/a"
    if "error" in cell:
        return "failed" if not cell["error"].startswith("not installed") else "not installed"
    value = cell.get(key)
    if value is None and key == "wall_s" and "finished" in cell:
        return f"> {fmt(cell['cap_s'])} (cap)"
    if value is None and key.startswith("kill_to"):
        return "not within the cap"
    return fmt(value) if value is not None else "-"


def ratio(awe: dict[str, Any] | None, peer: dict[str, Any] | None, key: str, better: str) -> str:
    """How many times better awe does than the peer on this line: above 1 awe is ahead, below 1 it is behind."""
    if better == NEUTRAL or not awe or not peer:
        return ""
    a, p = awe.get(key), peer.get(key)
    if key == "wall_s" and (a is None or p is None):  # an unfinished side: compare what finished instead
        a, p, better = awe.get("finished"), peer.get("finished"), HIGHER
    if not isinstance(a, int | float) or not isinstance(p, int | float) or a <= 0 or p <= 0:
        return ""
    times = a / p if better == HIGHER else p / a
    return f" (awe {times:.2f}x{'' if times >= 1 else ', behind'})"


def table(results: dict[str, Any]) -> str:
    """One Markdown table: a line per figure, a column per engine, each peer's figure with awe's ratio to it."""
    names = list(results["engines"])
    lines = [
        "| workload | figure | " + " | ".join(results["engines"][n] for n in names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for workload, what, key, better in ROWS:
        row = results["cells"].get(workload)
        if row is None:
            continue
        texts = []
        for name in names:
            text = cell_text(row.get(name), key)
            if name != "awe" and "awe" in row:
                text += ratio(row["awe"], row.get(name), key, better)
            texts.append(text)
        lines.append(f"| {workload} | {what} | " + " | ".join(texts) + " |")
    return "\n".join(lines)


def footnotes(results: dict[str, Any]) -> str:
    """Why a cell has no figure, and what each engine said about itself, under the table (once per engine if alike)."""
    said: dict[tuple[str, str], list[str]] = {}
    for workload, row in results["cells"].items():
        for name, cell in row.items():
            busy = cell.get("other_cpu_share", 0)
            disturbed = f"other processes used {busy:.0%} of the CPU meanwhile" if busy > BUSY_SHARE else None
            for why in (cell.get("skipped"), cell.get("error"), disturbed, *cell.get("notes", [])):
                if why:
                    said.setdefault((name, why), []).append(workload)
    notes = []
    for (name, why), workloads in said.items():
        measured = sum(name in row and "skipped" not in row[name] for row in results["cells"].values())
        everywhere = len(workloads) == measured
        where = name if everywhere and len(workloads) > 1 else f"{', '.join(workloads)} / {name}"
        notes.append(f"- {where}: {why}")
    for rerun in results.get("reruns", []):
        notes.append(f"- run again on {rerun['date']}: {', '.join(rerun['workloads'])} / {', '.join(rerun['engines'])}")
    return "\n".join(notes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(ENGINES), help=f"engines, comma-separated: {', '.join(ENGINES)}")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma-separated: {', '.join(WORKLOADS)}")
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run of a few minutes")
    parser.add_argument("--json", default="compare-results.json", help="where the raw figures go")
    parser.add_argument("--keep", action="store_true", help="run the cells again into --json's earlier figures")
    parser.add_argument("--tries", type=int, default=3, help="runs of a cell while other processes are busy")
    parser.add_argument("--table-from", help="print the table of an earlier run's JSON file, and run nothing")
    parser.add_argument("--awe-url", help="drive an awe engine you started (for profiling) instead of starting one")
    parser.add_argument("--awe-db", help="with --awe-url: that engine's SQLite file (chain10 reads run times from it)")
    parser.add_argument("--cell", nargs=2, metavar=("ENGINE", "WORKLOAD"), help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--scale", help=argparse.SUPPRESS)
    parser.add_argument("--iterations", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--recovery-phase", metavar="ENGINE", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cell:
        return cell_main(args)
    if args.recovery_phase:
        from engines.recovery import phase_a

        asyncio.run(phase_a(make_engine(args.recovery_phase), Path(args.folder), args.runs))
        return 0
    if bool(args.awe_url) != bool(args.awe_db):
        parser.error("--awe-url and --awe-db go together")
    if args.awe_url:  # the cells read them from their environment
        os.environ.update(AWE_BENCH_URL=args.awe_url, AWE_BENCH_DB=str(Path(args.awe_db).resolve()))
    if args.table_from:
        results = json.loads(Path(args.table_from).read_text())
    else:
        args.only = [n.strip() for n in args.only.split(",") if n.strip()]
        args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
        unknown = set(args.only) - set(ENGINES) | set(args.workloads) - set(WORKLOADS)
        if unknown:
            parser.error(f"unknown engines or workloads: {sorted(unknown)}")
        results = compare(args)
    print(f"{results['date']}, {results['machine']}{', --quick' if results['quick'] else ''}")
    print(f"awe: {results['awe']}\n")
    print(table(results))
    print("\n" + footnotes(results))
    print(f"\nraw figures: {args.table_from or args.json}; cell logs: {results['workdir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
