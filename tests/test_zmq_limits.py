"""Limits on the ZeroMQ link: no frame over ``--max-frame-bytes`` gets in or out; unknown peers' results are not kept.

The coordinator's memory is read from ``/proc/<pid>/status`` before and after: what an intruder sends
must not stay in it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from engine import Engine
from zmq_peers import raw_peer, replies, rss_bytes

from awe.transport.messages import JobDone, JobFailed

IN_MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")
MiB = 1024 * 1024
LIMIT = 400_000
"""The frame limit the module's engine runs with: small, so that a test crosses it cheaply."""
GROWTH_ALLOWED = 24 * MiB
"""What the coordinator may keep after the intrusions (caches warming up); what they sent is far more."""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def small_frames(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Engine]:
    """A coordinator and a worker that take frames of at most 400 kB."""
    folder = tmp_path_factory.mktemp("limits")
    async with Engine(folder, graphs=("sample_graphs", "big_graphs")) as engine:
        await engine.start_coordinator(extra=["--max-frame-bytes", str(LIMIT)])
        engine.start_worker(worker_id="w1", extra=["--max-frame-bytes", str(LIMIT)])
        await engine.wait_for_workers(1)
        yield engine


async def _still_serves(engine: Engine) -> None:
    run_id = await engine.start_run("counter_loop", {"count": 0, "target": 3})
    final = await engine.wait_finished(run_id)
    assert final["status"] == "completed" and final["state"]["count"] == 3


@IN_MODULE_LOOP
async def test_a_50_mib_frame_leaves_the_coordinators_memory_where_it_was(small_frames: Engine) -> None:
    engine = small_frames
    assert engine.coordinator is not None
    await _still_serves(engine)
    before = rss_bytes(engine.coordinator.pid)
    huge = os.urandom(50 * MiB)
    for identity in (b"big-1", b"big-2", b"big-3"):
        with raw_peer(engine.bind, identity) as peer:
            peer.send(huge)
            assert await replies(peer, 0.5) == []  # dropped unread, with the connection
    await _still_serves(engine)
    assert rss_bytes(engine.coordinator.pid) - before < GROWTH_ALLOWED


@IN_MODULE_LOOP
async def test_a_flood_of_results_from_unknown_peers_is_not_kept(small_frames: Engine) -> None:
    engine = small_frames
    assert engine.coordinator is not None
    run_id = await engine.start_run("slow", {"seconds": 30})  # a run in flight: results name it
    before = rss_bytes(engine.coordinator.pid)
    padding = "p" * 200_000
    per_peer = 100
    with raw_peer(engine.bind, b"flood-1") as first, raw_peer(engine.bind, b"flood-2") as second:
        for i in range(per_peer):
            first.send(JobDone(job_id=f"j{i}", run_id=run_id, delta={"pad": padding}).encode())
            second.send(JobFailed(job_id=f"k{i}", run_id=f"r{i}", error={"message": padding}).encode())
        # Each unknown peer's message is answered with a Rejoin: all answered, all handled.
        answered = await asyncio.gather(_count_replies(first, per_peer), _count_replies(second, per_peer))
    assert answered == [per_peer, per_peer]  # 40 MB sent
    await engine.request("POST", f"/runs/{run_id}/cancel")
    await _still_serves(engine)
    assert rss_bytes(engine.coordinator.pid) - before < GROWTH_ALLOWED


async def _count_replies(peer: object, expected: int) -> int:
    count = 0
    while count < expected:
        got = await replies(peer, 5.0) if count == 0 else await replies(peer, 1.0)  # type: ignore[arg-type]
        if not got:
            break
        count += len(got)
    return count


@IN_MODULE_LOOP
async def test_a_result_over_the_frame_limit_fails_its_run_with_the_reason(small_frames: Engine) -> None:
    engine = small_frames
    run_id = await engine.start_run("bloat", {"size": 2 * LIMIT})
    final = await engine.wait_finished(run_id)
    assert final["status"] == "failed"
    assert f"over the frame limit of {LIMIT} bytes" in final["error"]["message"]
    await _still_serves(engine)


@IN_MODULE_LOOP
async def test_a_job_over_the_frame_limit_fails_its_run_with_the_reason(small_frames: Engine) -> None:
    engine = small_frames
    run_id = await engine.start_run("bloat", {"size": 1, "pad": "y" * 1_000_000})
    final = await engine.wait_finished(run_id)
    assert final["status"] == "failed"
    assert f"over the frame limit of {LIMIT} bytes" in final["error"]["message"]
    await _still_serves(engine)


def test_the_frame_limit_is_a_setting_of_every_process(tmp_path: Path) -> None:
    from awe.cli.parser import parse

    for command in ("up", "coordinator", "worker"):
        assert parse([command, "--max-frame-bytes", "5MB"]).settings.max_frame_bytes == 5_000_000
