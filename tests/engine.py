"""A real awe deployment for tests: coordinator and workers as child processes.

Everything runs on free loopback ports in a temporary folder, with a real
SQLite file. Each process is started in its own session and stopped by pid;
:meth:`Engine.close` fails loudly if any of them is still alive afterwards.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

TESTS_DIR = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_awe_up(
    tmp_path: Path, *flags: str, stdout: int, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    """``awe up`` on free ports with its database and logs in ``tmp_path``, in its own session."""
    port = free_port()
    argv = [sys.executable, "-m", "awe", "up", "--port", str(port), "--bind", f"tcp://127.0.0.1:{free_port()}"]
    argv += ["--db", str(tmp_path / "up.db"), "--log-dir", str(tmp_path / "logs"), *flags]
    proc = subprocess.Popen(
        argv,
        cwd=TESTS_DIR,
        stdout=stdout,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    return proc, f"http://127.0.0.1:{port}"


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Engine:
    """Start with ``await Engine(tmp_path).start(workers=2)``; always ``await engine.close()``."""

    def __init__(
        self,
        folder: Path,
        *,
        graphs: tuple[str, ...] = ("sample_graphs",),
        heartbeat: float = 0.5,
        env: dict[str, str] | None = None,
    ) -> None:
        self.folder = folder
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.graphs = graphs
        self.heartbeat = heartbeat
        self.db = folder / "awe.db"
        self.log_dir = folder / "logs"
        self.http_port = free_port()
        self.zmq_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.bind = f"tcp://127.0.0.1:{self.zmq_port}"
        self.coordinator: Proc | None = None
        self.workers: list[Proc] = []
        self.session: aiohttp.ClientSession | None = None
        self._worker_count = 0

    # -- processes -------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str]) -> Proc:
        out = self.folder / f"{name}.out"
        stream = open(out, "ab")  # noqa: SIM115 - the child owns it
        graph_flags = [flag for module in self.graphs for flag in ("--graphs", module)]
        popen = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "awe",
                *args,
                *graph_flags,
                "--log-dir",
                str(self.log_dir),
                "--heartbeat-interval",
                str(self.heartbeat),
            ],
            cwd=TESTS_DIR,
            stdout=stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=self.env,
        )
        stream.close()
        return Proc(name, popen, out)

    async def start(self, workers: int = 2, *, capacity: int = 4) -> Engine:
        await self.start_coordinator()
        for _ in range(workers):
            self.start_worker(capacity=capacity)
        await self.wait_for_workers(workers)
        return self

    async def start_coordinator(self) -> Proc:
        if self.session is None:
            self.session = aiohttp.ClientSession()
        self.coordinator = self._spawn(
            "coordinator",
            ["coordinator", "--port", str(self.http_port), "--bind", self.bind, "--db", str(self.db)],
        )
        await self.wait_until(self._healthy, what="the coordinator to answer /healthz", proc=self.coordinator)
        return self.coordinator

    def start_worker(self, *, capacity: int = 4, worker_id: str | None = None, log_level: str | None = None) -> Proc:
        self._worker_count += 1
        worker_id = worker_id or f"w{self._worker_count}"
        level_flags = ["--log-level", log_level] if log_level else []
        proc = self._spawn(
            f"worker-{worker_id}",
            ["worker", "--connect", self.bind, "--capacity", str(capacity), "--worker-id", worker_id, *level_flags],
        )
        self.workers.append(proc)
        return proc

    async def wait_for_workers(self, count: int) -> None:
        async def enough() -> bool:
            return len(await self.workers_info()) >= count

        await self.wait_until(enough, what=f"{count} workers to join")

    def send_signal(self, proc: Proc, sig: int) -> None:
        if proc.alive():
            os.kill(proc.pid, sig)

    async def stop_process(self, proc: Proc, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        self.send_signal(proc, sig)
        return await self.wait_exit(proc, timeout=timeout, why=f"after signal {sig}")

    async def wait_exit(self, proc: Proc, *, timeout: float = 15.0, why: str = "") -> int:
        """The process's exit code; it is killed (and the test fails) if it outlives ``timeout``."""
        deadline = time.monotonic() + timeout
        while proc.alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
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
            await asyncio.sleep(0.05)
        stuck = [p for p in procs if p.alive()]
        for proc in procs:
            if proc.alive():
                os.killpg(proc.pid, signal.SIGKILL)
            proc.popen.wait()
        if self.session is not None:
            await self.session.close()
        assert not stuck, f"processes ignored SIGTERM: {[p.name for p in stuck]}"

    # -- waiting -----------------------------------------------------------------------

    async def wait_until(self, predicate: Any, *, what: str, timeout: float = 20.0, proc: Proc | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and not proc.alive():
                raise AssertionError(
                    f"{proc.name} exited with {proc.popen.returncode} while waiting for {what}:\n{proc.output()}"
                )
            try:
                if await predicate():
                    return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    async def _healthy(self) -> bool:
        assert self.session is not None
        async with self.session.get(f"{self.url}/healthz") as r:
            return r.status == 200

    # -- the API -------------------------------------------------------------------------

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        assert self.session is not None
        async with self.session.request(method, f"{self.url}{path}", **kwargs) as r:
            return r.status, await r.json(content_type=None)

    async def start_run(self, graph_id: str, initial_state: dict[str, Any] | None = None, **extra: Any) -> str:
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

    async def wait_finished(self, run_id: str, timeout: float = 30.0) -> dict[str, Any]:
        result: dict[str, Any] = {}

        async def finished() -> bool:
            result.update(await self.state(run_id))
            return result["status"] in ("completed", "failed", "cancelled")

        await self.wait_until(finished, what=f"run {run_id} to finish", timeout=timeout)
        return result

    async def ws_events(self, run_id: str, *, since: int | None = None, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Every event the WebSocket sends until the server closes it."""
        assert self.session is not None
        query = f"?since={since}" if since is not None else ""
        events = []
        async with self.session.ws_connect(f"{self.url}/ws/logs/{run_id}{query}") as ws:
            async with asyncio.timeout(timeout):
                async for msg in ws:
                    assert msg.type == aiohttp.WSMsgType.TEXT, msg
                    events.append(msg.json())
            assert ws.close_code == 1000, ws.close_code
        return events
