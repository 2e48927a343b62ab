"""``awe up``: the coordinator and N workers from one command, kept alive until told to stop.

A small supervisor. It checks that the graph modules import (so a broken
module fails here, with its traceback, before anything starts), launches
``awe coordinator`` and ``awe worker`` as child processes, replaces a child
that dies (with a doubling back-off if it keeps dying), and on SIGINT or
SIGTERM stops the workers first (they finish or hand back their jobs), then
the coordinator, escalating to SIGKILL for any child that outlives its grace
period. Signal handlers only set a flag; the loop does the work.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field

from awe.cli.coordinator_process import RefusedToStart, api_policy
from awe.cli.parser import secret_environment, to_flags
from awe.exit_codes import RESTARTABLE
from awe.graph import load_graphs_or_exit
from awe.settings import COORDINATOR, WORKER, Settings
from awe.transport.curve import KeyFolderError, worker_folders

STOP_GRACE_MARGIN = 5.0
"""A child gets its drain timeout plus this long to stop after SIGTERM before it is killed."""
QUICK_EXIT_SECONDS = 5.0
"""A child that dies sooner than this after its start is 'failing to start', not 'crashed'."""


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str] | None = None
    """Its environment, when it needs more than ours (secret settings go there, not in ``argv``)."""
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    backoff: float = 1.0
    restart_at: float | None = None
    restarts: int = field(default=0)

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv, env=self.env)
        self.started_at = time.monotonic()
        self.restart_at = None


def _worker_key_folders(settings: Settings) -> list[str | None]:
    """Each worker's ``--curve-keys``: a worker folder of the key folder each, or None for all without CURVE."""
    if settings.curve_keys is None:
        return [None] * settings.workers
    folders = worker_folders(settings.curve_keys)
    if len(folders) < settings.workers:
        raise KeyFolderError(
            f"{settings.curve_keys} holds keys for {len(folders)} workers and --workers is {settings.workers}: "
            f"add one with awe keys --out {settings.curve_keys} --add-worker NAME"
        )
    return [str(folder) for folder in folders[: settings.workers]]


def _connect_address(bind: str) -> str:
    """Where a worker on this machine reaches a coordinator bound to ``bind``."""
    return bind.replace("://*:", "://127.0.0.1:").replace("://0.0.0.0:", "://127.0.0.1:")


ADDRESSES = (
    ("API", "", "the REST API and /ws/logs/{run_id}"),
    ("docs", "/docs", "Swagger UI; the description itself is /openapi.json"),
    ("page", "/", "runs and graphs, live, in the browser"),
    ("metrics", "/metrics", "Prometheus text format"),
)


def where_things_are(url: str, log_dir: str) -> str:
    """The lines ``awe up`` prints once the coordinator answers: an address per thing a person can open."""
    lines = [f"  {name:<8} {url}{path:<10} {what}" for name, path, what in ADDRESSES]
    lines.append(f"  {'logs':<8} {log_dir}/ (a JSON file per process; the same events follow here)")
    return "\n".join(lines)


def _reachable_url(host: str, port: int) -> str:
    """The API's URL as a browser on this machine reaches it (a wildcard host is not an address to open)."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def run_up(settings: Settings) -> int:
    load_graphs_or_exit(settings.graphs)  # a broken module fails here, before any process starts
    try:
        api_policy(settings)  # so does an API that would be open to the network
    except RefusedToStart as exc:
        print(f"awe: cannot start the coordinator: {exc}", file=sys.stderr)
        return 1

    python = [sys.executable, "-m", "awe"]
    settings = settings.replace(log_console=True)  # the console shows what the processes' log files record
    secrets = secret_environment(COORDINATOR, settings)
    coordinator = Child(
        "coordinator",
        [*python, COORDINATOR, *to_flags(COORDINATOR, settings)],
        env={**os.environ, **secrets} if secrets else None,
    )
    try:
        key_folders = _worker_key_folders(settings)
    except KeyFolderError as exc:
        print(f"awe: {exc}", file=sys.stderr)
        return 2
    worker_settings = settings.replace(connect=_connect_address(settings.bind))
    workers = [
        Child(f"worker-{i + 1}", [*python, WORKER, *to_flags(WORKER, worker_settings.replace(curve_keys=folder))])
        for i, folder in enumerate(key_folders)
    ]

    stop_requested: list[int] = []

    def request_stop(signum: int, _frame: object) -> None:
        stop_requested.append(signum)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        coordinator.start()
        for worker in workers:
            worker.start()
        url = f"http://{settings.host}:{settings.port}"
        # Asked at an address the API answers for (its Host check refuses a wildcard such as 0.0.0.0).
        if _wait_healthy(_reachable_url(settings.host, settings.port), coordinator, stop_requested):
            print(f"awe is up: {url} with {len(workers)} workers (Ctrl-C to stop)", flush=True)
            print(where_things_are(_reachable_url(settings.host, settings.port), settings.log_dir), flush=True)
        failure = _supervise(coordinator, workers, stop_requested)
    finally:
        _stop_all(workers, coordinator, grace=settings.drain_timeout + STOP_GRACE_MARGIN)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return failure


def _wait_healthy(url: str, coordinator: Child, stop_requested: list[int]) -> bool:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not stop_requested:
        if coordinator.process is not None and coordinator.process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def _supervise(coordinator: Child, workers: list[Child], stop_requested: list[int]) -> int:
    """Keep every child running until a stop is requested; returns the exit code for ``awe up``."""
    while not stop_requested:
        now = time.monotonic()
        for child in (coordinator, *workers):
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.restarts += 1
                    print(f"awe: restarting {child.name} (restart #{child.restarts})", file=sys.stderr, flush=True)
                    child.start()
                continue
            code = child.process.poll() if child.process is not None else None
            if code is None:
                continue
            failing = now - child.started_at < QUICK_EXIT_SECONDS and _is_start_failure(code)
            if failing and child.restarts == 0:
                print(f"awe: {child.name} failed to start (exit code {code}); stopping", file=sys.stderr, flush=True)
                return code
            # Only a child that keeps failing as it starts waits longer each time; one that was killed
            # (by a signal, a person, the OOM killer) or asked for a fresh start comes back at once.
            child.backoff = min(child.backoff * 2, 30.0) if failing else 1.0
            child.restart_at = now + child.backoff
            print(
                f"awe: {child.name} exited with code {code}; restarting in {child.backoff:g}s",
                file=sys.stderr,
                flush=True,
            )
        time.sleep(0.2)
    return 0


def _is_start_failure(code: int) -> bool:
    """An error exit (bad flags, a port in use), not a kill by a signal or a child asking for a fresh start."""
    return code > 0 and code not in RESTARTABLE


def _stop_all(workers: list[Child], coordinator: Child, *, grace: float) -> None:
    """Workers first, so they can hand their results to a coordinator that is still there."""
    _terminate([w for w in workers if w.process is not None], grace)
    if coordinator.process is not None:
        _terminate([coordinator], grace)


def _terminate(children: list[Child], grace: float) -> None:
    for child in children:
        if child.process is not None and child.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children:
        assert child.process is not None
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"awe: {child.name} (pid {child.process.pid}) did not stop; killing it", file=sys.stderr)
            os.kill(child.process.pid, signal.SIGKILL)
            child.process.wait()
