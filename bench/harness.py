"""What the benchmark scripts share: free loopback ports, starting an engine and waiting for it."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).parent


def timestamp(text: str) -> float:
    """Seconds since the epoch of one of awe's ISO-8601 UTC timestamps."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_healthy(
    session: aiohttp.ClientSession, url: str, workers: int, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Until ``/healthz`` answers with ``workers`` connected; exits if ``process`` dies or 30 s pass."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (process is None or process.poll() is None):
        try:
            async with session.get(f"{url}/healthz") as r:
                if r.status == 200 and (await r.json())["workers"] >= workers:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("the engine did not come up")


class LocalEngine:
    """A coordinator and ``workers`` worker processes on free loopback ports, with a fresh database.

    ``async with LocalEngine(folder, workers=2) as engine:`` waits until every worker has joined;
    leaving the block stops every process it started.
    """

    def __init__(self, folder: Path, *, workers: int, capacity: int = 4, graphs: str = "bench_graphs") -> None:
        self.folder = folder
        self.db = folder / "bench.db"
        http_port, zmq_port = free_port(), free_port()
        self.url, self.bind = f"http://127.0.0.1:{http_port}", f"tcp://127.0.0.1:{zmq_port}"
        self.workers, self.capacity = workers, capacity
        common = ["--graphs", graphs, "--log-dir", str(folder / "logs")]
        self._argv = [
            [
                sys.executable,
                "-m",
                "awe",
                "coordinator",
                "--port",
                str(http_port),
                "--bind",
                self.bind,
                "--db",
                str(self.db),
                *common,
            ],
            *[
                [sys.executable, "-m", "awe", "worker", "--connect", self.bind, "--capacity", str(capacity), *common]
                for _ in range(workers)
            ],
        ]
        self._procs: list[subprocess.Popen[bytes]] = []
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> LocalEngine:
        self._procs = [
            subprocess.Popen(argv, cwd=HERE, stdout=subprocess.DEVNULL, start_new_session=True) for argv in self._argv
        ]
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))
        try:
            await wait_healthy(self.session, self.url, self.workers, self._procs[0])
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()
        for proc in self._procs:
            proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    async def start_run(self, graph_id: str, state: dict[str, Any]) -> str:
        assert self.session is not None
        async with self.session.post(f"{self.url}/graph/run", json={"graph_id": graph_id, "initial_state": state}) as r:
            assert r.status == 202, await r.text()
            return str((await r.json())["run_id"])

    async def wait_finished(self, run_id: str) -> dict[str, Any]:
        assert self.session is not None
        while True:
            async with self.session.get(f"{self.url}/graph/state/{run_id}") as r:
                run = await r.json()
            if run["status"] in ("completed", "failed", "cancelled"):
                return dict(run)
            await asyncio.sleep(0.05)  # the run's own timestamps give its duration; polling only costs CPU
