"""Raw ZeroMQ peers for the tests that play an intruder: a DEALER that says what it likes, and what a process logged."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgpack
import zmq

from awe.transport.curve import ClientKeys


@contextmanager
def raw_peer(address: str, identity: bytes, keys: ClientKeys | None = None) -> Iterator[zmq.Socket[bytes]]:
    """A DEALER connected to ``address`` as ``identity`` (with CURVE if ``keys``); closed on exit."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.IDENTITY, identity)
    if keys is not None:
        sock.setsockopt(zmq.CURVE_SERVERKEY, keys.server_public)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, keys.public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, keys.secret)
    sock.connect(address)
    try:
        yield sock
    finally:
        sock.close()
        ctx.term()


async def replies(sock: zmq.Socket[bytes], seconds: float) -> list[dict[str, Any]]:
    """Every message ``sock`` receives within ``seconds``, decoded."""
    got: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + seconds
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        if await asyncio.to_thread(sock.poll, int(left * 1000)):
            got.append(msgpack.unpackb(sock.recv(), raw=False))
    return got


def log_events(log_dir: Path, process: str) -> list[dict[str, Any]]:
    """The JSON lines a process wrote to ``<log_dir>/<process>.jsonl``."""
    path = log_dir / f"{process}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def rss_bytes(pid: int) -> int:
    """A process's resident memory, from ``/proc/<pid>/status``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")
