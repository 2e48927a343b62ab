"""What every engine's module shares: the workloads' sizes, the nodes' work, pid bookkeeping and memory sampling."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

BENCH = Path(__file__).resolve().parent.parent
"""The ``bench`` folder: the working directory of every process that imports ``bench_graphs`` or ``engines``."""

CHAIN_LENGTH = 10
FAN_BRANCHES = 8
SMALL_TEXT = 1024
"""The 1 KiB of text each chain10 run carries."""


@dataclass(frozen=True)
class Scale:
    """How big each workload is. The full sizes are the issue's; ``--quick`` shrinks them for a smoke run."""

    chain_runs: int = 500
    latency_runs: int = 200
    fanout_runs: int = 5
    branch_ms: float = 100.0
    waiting_runs: int = 10_000
    waiting_cap_s: float = 120.0
    big_runs: int = 100
    big_bytes: int = 1_000_000
    recovery_runs: int = 1000
    recovery_cap_s: float = 120.0


FULL = Scale()
QUICK = Scale(
    chain_runs=50,
    latency_runs=20,
    fanout_runs=2,
    waiting_runs=300,
    waiting_cap_s=20.0,
    big_runs=10,
    recovery_runs=100,
    recovery_cap_s=30.0,
)


# -- the nodes' work, the same for every engine ---------------------------------------------


def step_update(state: dict[str, Any], name: str) -> dict[str, Any]:
    """One chain node: count, and remember who counted. The same work as ``bench_graphs._step``."""
    return {"counter": state["counter"] + 1, "visited": [*state["visited"], name]}


def chain_state(text_bytes: int) -> dict[str, Any]:
    """A chain run's initial state: the counter, the list, and ``text_bytes`` of text no node touches."""
    return {"counter": 0, "visited": [], "text": "x" * text_bytes}


def check_chain(state: dict[str, Any], length: int) -> None:
    """Fail loudly when a final state is not what ``length`` nodes make: a fast wrong answer counts for nothing."""
    expected = [f"n{i}" for i in range(length)]
    if state.get("counter") != length or state.get("visited") != expected:
        raise AssertionError(f"wrong final state: counter {state.get('counter')}, visited {state.get('visited')}")


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile: with 200 samples p99 is the second slowest, not an interpolation."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def read_sqlite(path: Path, *queries: str) -> list[list[tuple[Any, ...]]] | None:
    """Each query's rows from an engine's SQLite file, opened read-only; None while the file or tables are missing."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as con:
            return [con.execute(sql).fetchall() for sql in queries]
    except sqlite3.OperationalError:
        return None


# -- processes ---------------------------------------------------------------------------------


class PidLog:
    """Every process a cell starts, appended to a file as ``pid create_time`` lines.

    The parent reads it after the cell, and kills whatever is still alive, even when the cell
    itself had to be killed: processes started in their own session are not in the cell's
    process group, so killing the group would leave them running.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: set[tuple[int, float]] = set()
        self._lock = threading.Lock()

    def add(self, pid: int) -> None:
        with contextlib.suppress(psutil.Error):
            key = (pid, psutil.Process(pid).create_time())
            with self._lock:
                if key not in self.seen:
                    self.seen.add(key)
                    with open(self.path, "a") as f:
                        f.write(f"{key[0]} {key[1]!r}\n")


def leftovers(path: Path) -> list[psutil.Process]:
    """The processes a cell recorded in its :class:`PidLog` that still run (the same pid and start time)."""
    alive = []
    if not path.exists():
        return alive
    for line in path.read_text().splitlines():
        pid, created = line.split()
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(int(pid))
            if proc.create_time() == float(created) and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
    return alive


def tree(pids: Iterable[int]) -> list[psutil.Process]:
    """The processes ``pids`` name and all their descendants (a Celery worker's pool, Dask's nannies' workers)."""
    procs: dict[int, psutil.Process] = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            for proc in [root, *root.children(recursive=True)]:
                procs[proc.pid] = proc
    return list(procs.values())


class RssSampler:
    """The peak of the resident memory summed over an engine's processes, sampled every ``interval`` seconds.

    A thread, so that it keeps sampling while an in-process engine keeps its event loop busy.
    Every process it sees also goes to the :class:`PidLog`.
    """

    def __init__(self, roots: Callable[[], list[int]], pids: PidLog, interval: float = 0.2) -> None:
        self.roots, self.pids, self.interval = roots, pids, interval
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> float:
        """Stop sampling; the peak in MB."""
        self._stop.set()
        self._thread.join(timeout=5)
        return round(self.peak_bytes / 1e6, 1)

    def sample(self) -> None:
        total = 0
        for proc in tree(self.roots()):
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
                if proc.pid != os.getpid():
                    self.pids.add(proc.pid)
        self.peak_bytes = max(self.peak_bytes, total)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)


def spawn(argv: list[str], out: Path, pids: PidLog, **kwargs: Any) -> subprocess.Popen[bytes]:
    """A child process in its own session (so that a terminal's Ctrl-C does not reach it), recorded in ``pids``."""
    with open(out, "ab") as stream:
        proc = subprocess.Popen(argv, stdout=stream, stderr=subprocess.STDOUT, start_new_session=True, **kwargs)
    pids.add(proc.pid)
    return proc


def stop(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM, then SIGKILL to its own process group (its session, which only it and its children are in)."""
    if proc.poll() is None:
        proc.terminate()
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
