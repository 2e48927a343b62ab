"""What the benchmark scripts share: free loopback ports, and waiting for an engine to come up."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time

import aiohttp


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
