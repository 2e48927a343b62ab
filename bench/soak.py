"""Soak: keep runs in flight on ``awe up`` while a random worker is SIGKILLed every few seconds.

Usage: python bench/soak.py [--duration 180] [--in-flight 200] [--workers 4] [--capacity 16] [--kill-every 3]

Starts ``awe up`` (coordinator and workers, restarted by ``awe up`` when they
die) on free loopback ports with a fresh SQLite file, and keeps ``--in-flight``
runs of the ``soak_chain`` graph going for ``--duration`` seconds: whenever a
run finishes, another one starts. Meanwhile, every ``--kill-every`` seconds, a
random connected worker is killed with SIGKILL. Then it stops submitting,
waits for every run to finish, and checks each one over the API: completed,
with the expected final state, and exactly one ``completed`` step record per
node, in order, after any ``lost`` attempts of that node. Exits 1 if any run
is wrong or unfinished. The temporary folder (database, JSON logs, ``awe up``
output) is kept and printed for inspection.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from bench_graphs import SOAK_LENGTH  # this script's folder is on sys.path
from harness import HERE, start_awe_up

from awe.testing import Client

GRAPH_ID = "soak_chain"
NODES = [f"s{i}" for i in range(SOAK_LENGTH)]
EXPECTED_STATE = {"counter": SOAK_LENGTH, "visited": NODES}
ACTIVE = ("queued", "running")
POLL_SECONDS = 0.25
DRAIN_SECONDS = 120.0
STOP_SECONDS = 20.0


@dataclass
class Tally:
    submitted: list[str] = field(default_factory=list)
    kills: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    completed_steps: int = 0
    lost_steps: int = 0
    wrong: int = 0
    """Runs that completed with a wrong final state or wrong step records."""
    problems: dict[str, str] = field(default_factory=dict)
    """run_id -> what is wrong with it (a failed, unfinished or wrong run)."""


def start_engine(args: argparse.Namespace, folder: Path) -> tuple[subprocess.Popen[str], str]:
    """``awe up`` in its own process group (so that the group can be killed as a last resort), and its URL."""
    flags = ["--graphs", "bench_graphs", "--workers", str(args.workers), "--capacity", str(args.capacity)]
    with open(folder / "up.out", "wb") as out:
        return start_awe_up(folder, *flags, "--heartbeat-interval", "0.5", cwd=HERE, stdout=out)


async def wait_up(url: str, workers: int, engine: subprocess.Popen[str]) -> None:
    """Until ``workers`` workers have joined; exits if ``awe up`` exits first."""
    async with Client(url) as api:

        async def ready() -> bool:
            if engine.poll() is not None:
                raise SystemExit(f"awe up exited with {engine.returncode} before {workers} workers joined")
            return len(await api.workers_info()) >= workers

        await api.wait_until(ready, what=f"awe up with {workers} workers", timeout=30)


def stop_engine(engine: subprocess.Popen[str]) -> None:
    """SIGTERM ``awe up`` (it stops its children); SIGKILL whatever is left of its process group."""
    engine.terminate()
    try:
        engine.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        print(f"awe up did not stop within {STOP_SECONDS:g}s; killing its process group", file=sys.stderr)
    with contextlib.suppress(ProcessLookupError):  # the normal case: nothing left
        os.killpg(engine.pid, signal.SIGKILL)
    engine.wait()


async def submit(session: aiohttp.ClientSession, url: str, run_id: str) -> None:
    body = {"graph_id": GRAPH_ID, "initial_state": {"counter": 0, "visited": []}, "run_id": run_id}
    async with session.post(f"{url}/graph/run", json=body) as r:
        if r.status != 202:
            raise RuntimeError(f"POST /graph/run for {run_id}: {r.status} {await r.text()}")


async def active_run_ids(session: aiohttp.ClientSession, url: str) -> set[str]:
    """Runs that are queued or running. Queued first: a run that starts between the two reads is still seen."""
    ids: set[str] = set()
    for status in ACTIVE:
        async with session.get(f"{url}/runs", params={"status": status, "limit": "1000"}) as r:
            ids.update(run["run_id"] for run in (await r.json())["runs"])
    return ids


async def keep_in_flight(session: aiohttp.ClientSession, url: str, args: argparse.Namespace, tally: Tally) -> None:
    """For ``args.duration`` seconds, start a new run whenever one of ``args.in_flight`` finishes."""
    in_flight: set[str] = set()
    deadline = time.monotonic() + args.duration
    while time.monotonic() < deadline:
        first = len(tally.submitted)
        new = [f"soak-{n:06d}" for n in range(first, first + args.in_flight - len(in_flight))]
        await asyncio.gather(*(submit(session, url, run_id) for run_id in new))
        tally.submitted += new
        in_flight.update(new)
        await asyncio.sleep(POLL_SECONDS)
        in_flight &= await active_run_ids(session, url)


async def wait_all_finished(session: aiohttp.ClientSession, url: str) -> None:
    deadline = time.monotonic() + DRAIN_SECONDS
    while await active_run_ids(session, url) and time.monotonic() < deadline:
        await asyncio.sleep(POLL_SECONDS)


def in_engine(pid: int, engine: subprocess.Popen[str]) -> bool:
    """Whether ``pid`` is a live process of this soak's ``awe up`` (never kill anything else)."""
    try:
        return os.getpgid(pid) == engine.pid
    except ProcessLookupError:
        return False


async def kill_workers(
    session: aiohttp.ClientSession, url: str, args: argparse.Namespace, engine: subprocess.Popen[str], tally: Tally
) -> None:
    """Every ``args.kill_every`` seconds, SIGKILL one random live worker; runs until cancelled."""
    while True:
        await asyncio.sleep(args.kill_every)
        async with session.get(f"{url}/workers") as r:
            pids = [w["pid"] for w in (await r.json())["workers"] if in_engine(w["pid"], engine)]
        if pids:
            os.kill(random.choice(pids), signal.SIGKILL)
            tally.kills += 1


def step_problem(steps: list[dict[str, Any]]) -> str | None:
    """Each node, in order: attempts 1..k, the first k-1 ``lost`` and the last ``completed``."""
    by_step: dict[int, list[dict[str, Any]]] = {}
    for s in steps:
        by_step.setdefault(s["step"], []).append(s)
    if sorted(by_step) != list(range(1, SOAK_LENGTH + 1)):
        return f"step numbers {sorted(by_step)}"
    for number, node in enumerate(NODES, start=1):
        attempts = sorted(by_step[number], key=lambda s: s["attempt"])
        seen = [(s["attempt"], s["node"], s["status"]) for s in attempts]
        expected = [(a, node, "lost") for a in range(1, len(attempts))] + [(len(attempts), node, "completed")]
        if seen != expected:
            return f"step {number}: records {seen}, expected {expected}"
    return None


async def check_run(session: aiohttp.ClientSession, url: str, run_id: str, tally: Tally) -> None:
    async with session.get(f"{url}/graph/state/{run_id}") as r:
        run = await r.json()
    async with session.get(f"{url}/runs/{run_id}/steps") as r:
        steps = (await r.json())["steps"]
    tally.statuses[run["status"]] += 1
    tally.completed_steps += sum(s["status"] == "completed" for s in steps)
    tally.lost_steps += sum(s["status"] == "lost" for s in steps)
    if run["status"] != "completed":
        tally.problems[run_id] = f"status {run['status']} at {run['current_node']}, error {run['error']}"
        return
    problem = f"final state {run['state']}" if run["state"] != EXPECTED_STATE else step_problem(steps)
    if problem:
        tally.wrong += 1
        tally.problems[run_id] = problem


async def check_all(session: aiohttp.ClientSession, url: str, tally: Tally) -> None:
    limit = asyncio.Semaphore(50)

    async def one(run_id: str) -> None:
        async with limit:
            await check_run(session, url, run_id, tally)

    await asyncio.gather(*(one(run_id) for run_id in tally.submitted))


def report(args: argparse.Namespace, tally: Tally, soak_s: float, drain_s: float, folder: Path) -> None:
    restarts = (folder / "up.out").read_text().count("awe: restarting worker")
    completed, failed = tally.statuses["completed"], tally.statuses["failed"]
    unfinished = sum(tally.statuses[s] for s in ACTIVE)
    elapsed = soak_s + drain_s
    print(
        f"soak: {GRAPH_ID} ({SOAK_LENGTH} nodes), {args.in_flight} runs in flight, {args.workers} workers "
        f"x capacity {args.capacity}, a worker SIGKILLed every {args.kill_every:g}s"
    )
    print(f"duration: {soak_s:.1f}s submitting + {drain_s:.1f}s draining")
    print(
        f"runs: {len(tally.submitted)} submitted, {completed} completed, {failed} failed, "
        f"{unfinished} unfinished, {tally.wrong} completed but wrong"
    )
    print(f"steps: {tally.completed_steps} completed, {tally.lost_steps} lost attempts re-run")
    print(f"workers: {tally.kills} killed, {restarts} restarted by awe up")
    print(f"throughput: {completed / elapsed:.1f} runs/s, {tally.completed_steps / elapsed:.0f} steps/s")
    print(f"database, logs and awe up output: {folder}")
    for run_id, problem in sorted(tally.problems.items())[:20]:
        print(f"  {run_id}: {problem}")


async def soak(args: argparse.Namespace, engine: subprocess.Popen[str], url: str, tally: Tally) -> tuple[float, float]:
    """Returns the seconds spent submitting and the seconds spent waiting for the last runs."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
        await wait_up(url, args.workers, engine)
        started = time.monotonic()
        killer = asyncio.create_task(kill_workers(session, url, args, engine, tally))
        try:
            await keep_in_flight(session, url, args, tally)
        finally:
            killer.cancel()
        submitted = time.monotonic()
        await wait_all_finished(session, url)
        drained = time.monotonic()
        await check_all(session, url, tally)
    return submitted - started, drained - submitted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=180.0, help="seconds to keep runs in flight")
    parser.add_argument("--in-flight", type=int, default=200, help="runs kept going at once (1 to 1000)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--capacity", type=int, default=16)
    parser.add_argument("--kill-every", type=float, default=3.0, help="seconds between worker kills")
    args = parser.parse_args()
    if not 1 <= args.in_flight <= 1000:  # GET /runs lists at most 1000 runs
        parser.error("--in-flight must be between 1 and 1000")

    folder = Path(tempfile.mkdtemp(prefix="awe-soak-"))
    tally = Tally()
    engine, url = start_engine(args, folder)
    try:
        soak_s, drain_s = asyncio.run(soak(args, engine, url, tally))
    finally:
        stop_engine(engine)
    report(args, tally, soak_s, drain_s, folder)
    return 1 if tally.problems else 0


if __name__ == "__main__":
    sys.exit(main())
