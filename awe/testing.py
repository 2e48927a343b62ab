"""Run an awe engine from Python: for awe's own tests and benchmarks, and for testing your graphs.

Two engines share one client (:class:`Client`: the HTTP API, each call checking the status it
expects, and bounded waits):

- :class:`InProcessEngine` runs the coordinator (its HTTP API, ZeroMQ endpoint and SQLite store)
  and its workers as tasks in the caller's event loop. It starts in a fraction of a second, so it
  is the one to use for anything that does not depend on separate processes::

      async with InProcessEngine(tmp_path, cwd=here, graphs=("my_graphs",)) as engine:
          await engine.start(workers=2)
          run_id = await engine.start_run("my_graph", {"question": "..."})
          assert (await engine.wait_finished(run_id))["status"] == "completed"

- :class:`ProcessEngine` starts ``awe coordinator`` and ``awe worker`` as child processes, each in
  its own session and stopped by pid. Use it to kill or signal a process, to read a process's log
  file or exit code, or to measure work that needs more than one CPU (the nodes of an in-process
  engine share one interpreter and its GIL). :func:`start_awe_up` starts ``awe up`` the same way.

Both take ``cwd``, the folder the ``graphs`` modules are imported from (as if awe had been started
there), and keep their database and logs in a folder of the caller's (``tmp_path`` in pytest).
``close()`` (or leaving the ``async with`` block) stops everything the engine started and fails
loudly if anything outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Self
from urllib.parse import urlsplit

import aiohttp

from awe.cli.coordinator_process import RunningCoordinator, coordinator_services
from awe.graph import CompiledGraph, load_graphs
from awe.settings import Settings
from awe.workers.worker import Worker

FINISHED = ("completed", "failed", "cancelled")
"""The statuses a run does not leave."""

POLL_SECONDS = 0.05
"""Between two looks at a condition that has no event to wait on (an HTTP answer, a process's exit)."""

NODE_THREAD_GRACE = 5.0
"""How long an in-process engine's close waits for node threads that outlived their worker's drain.

Only a sync node that will not return (one past its timeout, say) is still running by then."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timestamp(text: str) -> float:
    """Seconds since the epoch of one of awe's ISO-8601 UTC timestamps (``2024-05-01T12:00:00.123456Z``)."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


# -- the client ------------------------------------------------------------------------------


class Client:
    """An engine's HTTP API, as a test uses it: each helper asserts the status it expects.

    ``url`` is the API's base URL and ``session`` the HTTP session; the engines set both when
    they start. A client of an engine started some other way is ``Client(url)`` inside
    ``async with``, which opens and closes the session.
    """

    def __init__(self, url: str = "", *, token: str | None = None) -> None:
        self.url = url
        self.token = token
        """The API token every request sends (None: the engine has none)."""
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._open_session()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    def _open_session(self) -> aiohttp.ClientSession:
        if self.session is None:
            auth = {"Authorization": f"Bearer {self.token}"} if self.token is not None else None
            self.session = aiohttp.ClientSession(headers=auth)
        return self.session

    def _session(self) -> aiohttp.ClientSession:
        assert self.session is not None, "the engine is not started"
        return self.session

    @property
    def http_port(self) -> int:
        """The API's TCP port, for tests that speak HTTP or WebSocket by hand."""
        port = urlsplit(self.url).port
        assert port is not None, f"no port in {self.url!r}"
        return port

    # -- waiting ---------------------------------------------------------------------------

    async def wait_until(self, predicate: Callable[[], Awaitable[bool]], *, what: str, timeout: float = 20.0) -> None:
        """Poll ``predicate`` until it is true; fail naming ``what`` after ``timeout`` seconds.

        A request that cannot connect counts as "not yet" (the API may be starting). To give up
        early, for instance because a process died, the predicate raises.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if await predicate():
                    return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(POLL_SECONDS)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    async def wait_for_workers(self, count: int) -> None:
        """Until at least ``count`` workers have joined the coordinator."""

        async def enough() -> bool:
            return len(await self.workers_info()) >= count

        await self.wait_until(enough, what=f"{count} workers to join")

    async def wait_finished(self, run_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """The run's state once its status is final (``completed``, ``failed`` or ``cancelled``)."""
        result: dict[str, Any] = {}

        async def finished() -> bool:
            result.update(await self.state(run_id))
            return result["status"] in FINISHED

        await self.wait_until(finished, what=f"run {run_id} to finish", timeout=timeout)
        return result

    # -- the API -------------------------------------------------------------------------

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """The status and the decoded JSON body (whatever its content type) of one request."""
        async with self._session().request(method, f"{self.url}{path}", **kwargs) as r:
            return r.status, await r.json(content_type=None)

    async def start_run(self, graph_id: str, initial_state: dict[str, Any] | None = None, **extra: Any) -> str:
        """Submit a run (``extra``: other body fields, like ``run_id`` or ``max_steps``); its id."""
        status, body = await self.request(
            "POST", "/graph/run", json={"graph_id": graph_id, "initial_state": initial_state or {}, **extra}
        )
        assert status == 202, body
        return str(body["run_id"])

    async def state(self, run_id: str) -> dict[str, Any]:
        status, body = await self.request("GET", f"/graph/state/{run_id}")
        assert status == 200, body
        return dict(body)

    async def steps(self, run_id: str) -> list[dict[str, Any]]:
        status, body = await self.request("GET", f"/runs/{run_id}/steps")
        assert status == 200, body
        return list(body["steps"])

    async def workers_info(self) -> list[dict[str, Any]]:
        status, body = await self.request("GET", "/workers")
        assert status == 200, body
        return list(body["workers"])

    async def ws_events(self, run_id: str, *, since: int | None = None, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Every event the WebSocket sends until the server closes it, which it must do with 1000."""
        query = f"?since={since}" if since is not None else ""
        events = []
        async with self._session().ws_connect(f"{self.url}/ws/logs/{run_id}{query}") as ws:
            async with asyncio.timeout(timeout):
                async for msg in ws:
                    assert msg.type == aiohttp.WSMsgType.TEXT, msg
                    events.append(msg.json())
            assert ws.close_code == 1000, ws.close_code
        return events


# -- the engines -----------------------------------------------------------------------------


class BaseEngine(Client, ABC):
    """What both engines do alike: start a coordinator and workers, and wait until they have joined."""

    async def start(self, workers: int = 2, *, capacity: int = 4) -> Self:
        """The coordinator, then ``workers`` workers (``w1``, ``w2``, ...), once all have joined."""
        await self.start_coordinator()
        for _ in range(workers):
            self.start_worker(capacity=capacity)
        await self.wait_for_workers(workers)
        return self

    @abstractmethod
    async def start_coordinator(self) -> object:
        """A coordinator serving the API at :attr:`url`; it answers once this returns."""

    @abstractmethod
    def start_worker(self, *, capacity: int = 4, worker_id: str | None = None) -> object:
        """A worker connecting to the coordinator; :meth:`Client.wait_for_workers` tells when it joined."""


# -- an engine in this process -------------------------------------------------------------


@dataclass
class InProcessWorker:
    """A :class:`~awe.workers.worker.Worker` and the task running it."""

    worker: Worker
    task: asyncio.Task[None]


class InProcessEngine(BaseEngine):
    """A coordinator and workers as tasks in the running event loop, on a fresh database in ``folder``.

    Workers reach the coordinator over a ZeroMQ ``inproc://`` address unless ``bind`` names
    another. Logging is left as the caller set it up: awe logs through structlog, whose default
    prints to stdout (which pytest captures and shows for a failed test only).

    Nodes run in each worker's thread pool, as in a worker process, but every thread shares this
    interpreter: a node that never returns keeps its thread, and :meth:`close` fails.
    """

    def __init__(
        self,
        folder: Path,
        *,
        cwd: Path | None = None,
        graphs: Sequence[str] = (),
        heartbeat: float = 0.5,
        drain_timeout: float = 10.0,
        bind: str | None = None,
    ) -> None:
        super().__init__()
        self.folder = folder
        self.cwd = cwd
        self.settings = Settings(
            graphs=tuple(graphs),
            port=0,
            bind=bind or f"inproc://awe-{uuid.uuid4().hex}",
            db=str(folder / "awe.db"),
            log_dir=str(folder / "logs"),
            heartbeat_interval=heartbeat,
            drain_timeout=drain_timeout,
        )
        self.coordinator: RunningCoordinator | None = None
        self.workers: list[InProcessWorker] = []
        self._graphs: dict[str, CompiledGraph] | None = None
        self._coordinator_scope = AsyncExitStack()
        self._tasks_before: set[asyncio.Task[Any]] | None = None

    @property
    def bind(self) -> str:
        """The ZeroMQ address the coordinator listens on."""
        return self.coordinator.bind if self.coordinator is not None else self.settings.bind

    def compiled_graphs(self) -> dict[str, CompiledGraph]:
        """The graphs served, loaded once, as ``awe --graphs ...`` started in ``cwd`` would load them."""
        if self._graphs is None:
            search_path = str(self.cwd) if self.cwd is not None else None
            self._graphs = load_graphs(self.settings.graphs, search_path=search_path)
        return self._graphs

    async def start_coordinator(self) -> RunningCoordinator:
        """The coordinator, serving its API on a free port; it answers once this returns."""
        assert self.coordinator is None, "the coordinator is already running"
        if self._tasks_before is None:
            self._tasks_before = asyncio.all_tasks()
        self._open_session()
        self.coordinator = await self._coordinator_scope.enter_async_context(
            coordinator_services(self.settings, self.compiled_graphs())
        )
        self.url = self.coordinator.url
        return self.coordinator

    def start_worker(
        self, *, capacity: int = 4, worker_id: str | None = None, state_cache_bytes: int = 256 * 1024 * 1024
    ) -> Worker:
        """A worker connecting to the coordinator; :meth:`Client.wait_for_workers` tells when it joined."""
        worker = Worker(
            state_cache_bytes=state_cache_bytes,
            connect=self.bind,
            graphs=self.compiled_graphs(),
            worker_id=worker_id or f"w{len(self.workers) + 1}",
            capacity=capacity,
            heartbeat_interval=self.settings.heartbeat_interval,
            heartbeat_liveness=self.settings.heartbeat_liveness,
            drain_timeout=self.settings.drain_timeout,
            handle_signals=False,
        )
        task = asyncio.create_task(worker.run(), name=f"awe-worker-{worker.worker_id}")
        self.workers.append(InProcessWorker(worker, task))
        return worker

    async def close(self) -> None:
        """Stop the workers, then the coordinator; fail if a task, a socket or a node thread is left.

        Everything is stopped before anything is complained about, so that one failure does not
        leave the rest running into the next test.
        """
        problems: list[str] = []
        try:
            for running in self.workers:
                problems += await self._stop_worker(running)
            self.workers.clear()
            problems += await self._stop_coordinator()
        finally:
            await super().close()
            problems += await self._leftover_tasks()
        assert not problems, "; ".join(problems)

    async def _stop_worker(self, running: InProcessWorker) -> list[str]:
        """Stop the worker as SIGTERM would, and join its node threads; what did not stop, as problems."""
        worker = running.worker
        bound = 2 * self.settings.drain_timeout + 5  # the drain, then the flush of its goodbye
        worker.stop()
        problems: list[str] = []
        done, _ = await asyncio.wait({running.task}, timeout=bound)
        if not done:
            running.task.cancel()
            await asyncio.gather(running.task, return_exceptions=True)
            problems.append(f"worker {worker.worker_id} did not stop within {bound}s")
        elif not running.task.cancelled() and running.task.exception() is not None:
            problems.append(f"worker {worker.worker_id} failed: {running.task.exception()!r}")
        if not worker.endpoint.socket.closed:
            problems.append(f"worker {worker.worker_id} left its ZeroMQ socket open")
        if not await _node_threads_joined(worker, timeout=NODE_THREAD_GRACE):
            problems.append(f"a node thread of worker {worker.worker_id} is still running")
        return problems

    async def _stop_coordinator(self) -> list[str]:
        """Leave the coordinator's context (it drains, then closes its API, endpoint and store); what stayed open."""
        running, self.coordinator = self.coordinator, None
        await self._coordinator_scope.aclose()
        if running is None:
            return []
        problems = []
        if not running.coordinator.endpoint.socket.closed:
            problems.append("the coordinator left its ZeroMQ socket open")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", self.http_port)
        except OSError:
            return problems
        writer.close()
        await writer.wait_closed()
        return [*problems, f"the API still accepts connections on port {self.http_port}"]

    async def _leftover_tasks(self) -> list[str]:
        """Tasks started since the coordinator started and still running: cancelled, and named."""
        if self._tasks_before is None:
            return []  # nothing was started
        left = [t for t in asyncio.all_tasks() - self._tasks_before if t is not asyncio.current_task() and not t.done()]
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
        return [f"tasks still running after close: {sorted(t.get_name() for t in left)}"] if left else []


async def _node_threads_joined(worker: Worker, *, timeout: float) -> bool:
    """Whether the worker's node threads ended within ``timeout`` (its run shut the pool down without waiting).

    The join runs in a daemon thread of its own rather than in the loop's executor: a node thread
    that never returns must fail the test, not hang the loop's shutdown.
    """
    loop = asyncio.get_running_loop()
    joined = asyncio.Event()

    def join() -> None:
        worker.threads.shutdown(wait=True)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: the test has already failed
            loop.call_soon_threadsafe(joined.set)

    threading.Thread(target=join, name=f"join-{worker.worker_id}", daemon=True).start()
    try:
        async with asyncio.timeout(timeout):
            await joined.wait()
    except TimeoutError:
        return False
    return True


# -- an engine of child processes ------------------------------------------------------------


@dataclass
class Proc:
    """One child process of a :class:`ProcessEngine`; its output goes to ``log_path``."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        """What the process printed (stdout and stderr), so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class ProcessEngine(BaseEngine):
    """``awe coordinator`` and ``awe worker`` as child processes on free loopback ports.

    Start with ``await ProcessEngine(folder, cwd=..., graphs=(...)).start(workers=2)``, or start the
    coordinator and each worker yourself; always ``await engine.close()`` (or use ``async with``).
    Each process runs in its own session, writes its output to ``<folder>/<name>.out`` and its
    JSON logs to ``<folder>/logs``, and is stopped by its pid; :meth:`close` fails if one of them
    ignores SIGTERM.
    """

    def __init__(
        self,
        folder: Path,
        *,
        cwd: Path | None = None,
        graphs: Sequence[str] = (),
        heartbeat: float = 0.5,
        env: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"http://127.0.0.1:{free_port()}")
        self.folder = folder
        self.cwd = cwd if cwd is not None else Path.cwd()
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.graphs = tuple(graphs)
        self.heartbeat = heartbeat
        self.db = folder / "awe.db"
        self.log_dir = folder / "logs"
        self.zmq_port = free_port()
        self.bind = f"tcp://127.0.0.1:{self.zmq_port}"
        self.coordinator: Proc | None = None
        self.workers: list[Proc] = []
        self._worker_count = 0

    # -- processes -------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str], graphs: Sequence[str] | None = None) -> Proc:
        out = self.folder / f"{name}.out"
        modules = self.graphs if graphs is None else graphs
        graph_flags = [flag for module in modules for flag in ("--graphs", module)]
        with open(out, "ab") as stream:  # the child has its own copy of the descriptor
            popen = subprocess.Popen(
                [
                    *(sys.executable, "-m", "awe", *args, *graph_flags),
                    *("--log-dir", str(self.log_dir), "--heartbeat-interval", str(self.heartbeat)),
                ],
                cwd=self.cwd,
                stdout=stream,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=self.env,
            )
        return Proc(name, popen, out)

    async def start_coordinator(self, *, extra: Sequence[str] = ()) -> Proc:
        """A coordinator process on this engine's ports and database, once its API answers.

        ``extra``: more flags (``--curve-keys DIR``, for one).
        """
        self._open_session()
        coordinator = self._spawn(
            "coordinator",
            ["coordinator", "--port", str(self.http_port), "--bind", self.bind, "--db", str(self.db), *extra],
        )
        self.coordinator = coordinator

        async def healthy() -> bool:
            if not coordinator.alive():
                raise AssertionError(
                    f"{coordinator.name} exited with {coordinator.popen.returncode} before it answered:\n"
                    f"{coordinator.output()}"
                )
            async with self._session().get(f"{self.url}/healthz") as r:
                return r.status == 200

        await self.wait_until(healthy, what="the coordinator to answer /healthz")
        return coordinator

    def start_worker(
        self,
        *,
        capacity: int = 4,
        worker_id: str | None = None,
        log_level: str | None = None,
        graphs: Sequence[str] | None = None,
        extra: Sequence[str] = (),
    ) -> Proc:
        """A worker process (named ``w<n>`` unless ``worker_id`` is given); it joins on its own.

        ``graphs``: other graph modules than the engine's, for a worker that has fewer (or more) tools.
        ``extra``: more flags (``--curve-keys DIR/worker-1``, for one).
        """
        self._worker_count += 1
        worker_id = worker_id or f"w{self._worker_count}"
        level_flags = ["--log-level", log_level] if log_level else []
        proc = self._spawn(
            f"worker-{worker_id}",
            [
                *("worker", "--connect", self.bind, "--capacity", str(capacity), "--worker-id", worker_id),
                *level_flags,
                *extra,
            ],
            graphs,
        )
        self.workers.append(proc)
        return proc

    def send_signal(self, proc: Proc, sig: int) -> None:
        if proc.alive():
            os.kill(proc.pid, sig)

    async def stop_process(self, proc: Proc, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Send ``sig`` and return the exit code (see :meth:`wait_exit`)."""
        self.send_signal(proc, sig)
        return await self.wait_exit(proc, timeout=timeout, why=f"after signal {sig}")

    async def wait_exit(self, proc: Proc, *, timeout: float = 15.0, why: str = "") -> int:
        """The process's exit code; it is killed (and the test fails) if it outlives ``timeout``."""
        deadline = time.monotonic() + timeout
        while proc.alive() and time.monotonic() < deadline:
            await asyncio.sleep(POLL_SECONDS)
        if proc.alive():
            os.kill(proc.pid, signal.SIGKILL)
            proc.popen.wait()
            raise AssertionError(f"{proc.name} (pid {proc.pid}) did not exit {why} within {timeout}s")
        return proc.popen.returncode

    async def close(self) -> None:
        """Stop everything this engine started, by pid; complain about anything left alive."""
        procs = [*self.workers, *([self.coordinator] if self.coordinator else [])]
        for proc in procs:
            self.send_signal(proc, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while any(p.alive() for p in procs) and time.monotonic() < deadline:
            await asyncio.sleep(POLL_SECONDS)
        stuck = [p for p in procs if p.alive()]
        for proc in procs:
            if proc.alive():
                os.killpg(proc.pid, signal.SIGKILL)
            proc.popen.wait()
        await super().close()
        assert not stuck, f"processes ignored SIGTERM: {[p.name for p in stuck]}"


def start_awe_up(
    folder: Path,
    *flags: str,
    cwd: Path | None = None,
    stdout: int | IO[Any],
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[str], str]:
    """``awe up`` on free ports with its database and logs in ``folder``, in its own session; and its URL.

    The caller stops it (SIGTERM to its pid stops its children too) and closes its ``stdout`` pipe.
    """
    port = free_port()
    argv = [sys.executable, "-m", "awe", "up", "--port", str(port), "--bind", f"tcp://127.0.0.1:{free_port()}"]
    argv += ["--db", str(folder / "up.db"), "--log-dir", str(folder / "logs"), *flags]
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        stdout=stdout,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    return proc, f"http://127.0.0.1:{port}"
