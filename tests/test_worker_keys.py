"""CURVE on the worker socket: only workers with an allowed key join, and no key speaks for another.

Real processes on real sockets: a coordinator started with ``--curve-keys``, a worker with its own
folder of an ``awe keys`` folder, and intruders played by raw ZeroMQ sockets in the test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from engine import Engine
from zmq_peers import log_events, raw_peer, replies

from awe.cli import main
from awe.transport.curve import (
    ALLOWED_WORKERS,
    COORDINATOR_SECRET,
    WORKER_SECRET,
    add_worker_key,
    create_key_folder,
    load_client_keys,
)
from awe.transport.messages import Goodbye, Hello, JobDone

IN_MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")
"""The tests that share the module's engine run in its event loop."""


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A key folder with two allowed workers, and a third key whose public half is not allowed."""
    folder = tmp_path_factory.mktemp("keys") / "keys"
    create_key_folder(folder, workers=2)
    add_worker_key(folder, "stranger")
    (folder / ALLOWED_WORKERS / "stranger.key").unlink()
    return folder


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def curve_engine(tmp_path_factory: pytest.TempPathFactory, keys: Path) -> AsyncIterator[Engine]:
    """A coordinator that takes only allowed keys, and worker w1 with the key worker-1."""
    async with Engine(tmp_path_factory.mktemp("curve")) as engine:
        await engine.start_coordinator(extra=["--curve-keys", str(keys)])
        engine.start_worker(worker_id="w1", extra=["--curve-keys", str(keys / "worker-1")])
        await engine.wait_for_workers(1)
        yield engine


async def _job_of(engine: Engine, worker_id: str, run_id: str) -> str:
    """The id of the job of ``run_id`` that ``worker_id`` received, from its log file."""
    found: list[str] = []

    async def received() -> bool:
        events = log_events(engine.log_dir, f"worker-{worker_id}")
        found[:] = [e["job_id"] for e in events if e["event"] == "job_received" and e.get("run_id") == run_id]
        return bool(found)

    await engine.wait_until(received, what=f"{worker_id} to receive a job of {run_id}")
    return found[0]


def test_awe_keys_writes_secret_keys_for_their_owner_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "keys"
    assert main(["keys", "--out", str(out), "--workers", "3"]) == 0
    printed = capsys.readouterr().out
    for name in ("worker-1", "worker-2", "worker-3"):
        secret = out / name / WORKER_SECRET
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        assert (out / ALLOWED_WORKERS / f"{name}.key").exists()
        assert f"{out / name}/" in printed
    assert stat.S_IMODE((out / COORDINATOR_SECRET).stat().st_mode) == 0o600
    assert "--curve-keys" in printed
    # A second run would replace the coordinator's key and lock every worker out: refused.
    assert main(["keys", "--out", str(out)]) == 2
    assert "already holds a coordinator key" in capsys.readouterr().err
    assert main(["keys", "--out", str(out), "--add-worker", "gpu-box"]) == 0
    assert load_client_keys(out / "gpu-box").server_public == load_client_keys(out / "worker-1").server_public
    assert main(["keys", "--out", str(out), "--add-worker", "../escape"]) == 2
    assert not (tmp_path / "escape").exists()


@IN_MODULE_LOOP
async def test_a_worker_with_an_allowed_key_runs_jobs(curve_engine: Engine) -> None:
    run_id = await curve_engine.start_run("counter_loop", {"count": 0, "target": 3})
    final = await curve_engine.wait_finished(run_id)
    assert final["status"] == "completed" and final["state"]["count"] == 3
    assert {step["worker_id"] for step in await curve_engine.steps(run_id)} == {"w1"}


@IN_MODULE_LOOP
async def test_a_worker_with_an_unknown_key_is_refused_and_never_gets_a_job(curve_engine: Engine, keys: Path) -> None:
    engine = curve_engine
    # A short drain: stopped, it cannot hand its Goodbye to a coordinator that never let it in.
    flags = ["--curve-keys", str(keys / "stranger"), "--drain-timeout", "1"]
    stranger = engine.start_worker(worker_id="w9", extra=flags)
    try:

        async def refused() -> bool:
            return any(e["event"] == "worker_refused" for e in log_events(engine.log_dir, "coordinator"))

        await engine.wait_until(refused, what="the coordinator to refuse the stranger's key")
        runs = [await engine.start_run("counter_loop", {"count": 0, "target": 2}) for _ in range(4)]
        for run_id in runs:
            assert (await engine.wait_finished(run_id))["status"] == "completed"
            assert {step["worker_id"] for step in await engine.steps(run_id)} == {"w1"}
        assert [w["worker_id"] for w in await engine.workers_info()] == ["w1"]
        assert stranger.alive()  # it keeps trying, and keeps being refused
        worker_log = log_events(engine.log_dir, "worker-w9")
        assert not any(e["event"] == "job_received" for e in worker_log)
        # The stranger is told why (its log may trail the coordinator's), once (not at every retry).

        def told() -> list[dict[str, Any]]:
            return [e for e in log_events(engine.log_dir, "worker-w9") if e["event"] == "coordinator_refused_key"]

        async def was_told() -> bool:
            return bool(told())

        await engine.wait_until(was_told, what="the stranger to log why it is refused")
        await asyncio.sleep(0.5)  # several reconnection attempts meanwhile: none is logged again
        refused = told()
        assert len(refused) == 1 and "allowed_workers" in refused[0]["reason"]
    finally:
        await engine.stop_process(stranger)


@IN_MODULE_LOOP
async def test_worker_processes_may_share_a_key_each_under_its_own_worker_id(curve_engine: Engine, keys: Path) -> None:
    engine = curve_engine
    twin = engine.start_worker(worker_id="w1-twin", extra=["--curve-keys", str(keys / "worker-1")])
    try:

        async def both() -> bool:
            return {w["worker_id"] for w in await engine.workers_info()} == {"w1", "w1-twin"}

        await engine.wait_until(both, what="a second process with worker-1's key to join")
    finally:
        await engine.stop_process(twin)

    async def left() -> bool:
        return [w["worker_id"] for w in await engine.workers_info()] == ["w1"]

    await engine.wait_until(left, what="the twin to leave")


@IN_MODULE_LOOP
async def test_a_worker_with_the_wrong_coordinator_key_says_so_and_gets_nothing(
    curve_engine: Engine, keys: Path, tmp_path: Path
) -> None:
    """Its own key is allowed, but it expects another coordinator: it never talks to this one."""
    engine = curve_engine
    other = tmp_path / "other"
    create_key_folder(other, workers=1)
    folder = tmp_path / "worker-2"
    shutil.copytree(keys / "worker-2", folder)
    shutil.copy(other / "worker-1" / "coordinator.key", folder / "coordinator.key")
    misled = engine.start_worker(worker_id="w8", extra=["--curve-keys", str(folder), "--drain-timeout", "1"])
    try:

        async def told() -> bool:
            return any(e["event"] == "handshake_failed" for e in log_events(engine.log_dir, "worker-w8"))

        await engine.wait_until(told, what="the misled worker to say its handshake fails")
        assert "coordinator.key" in next(
            e["reason"] for e in log_events(engine.log_dir, "worker-w8") if e["event"] == "handshake_failed"
        )
        assert [w["worker_id"] for w in await engine.workers_info()] == ["w1"]
    finally:
        await engine.stop_process(misled)


@IN_MODULE_LOOP
async def test_a_peer_without_curve_gets_no_answer(curve_engine: Engine) -> None:
    hello = Hello(worker_id="plain", pid=1, host="x", capacity=8, graphs={})
    with raw_peer(curve_engine.bind, b"plain") as peer:
        peer.send(hello.encode())
        assert await replies(peer, 1.5) == []
    assert [w["worker_id"] for w in await curve_engine.workers_info()] == ["w1"]


@IN_MODULE_LOOP
async def test_a_key_holder_cannot_speak_for_another_worker_or_forge_its_result(
    curve_engine: Engine, keys: Path
) -> None:
    """worker-2's key, used with w1's identity (held by w1's connection), with another identity of w1's key,
    and with a made-up one: nothing gets in."""
    engine = curve_engine
    own = load_client_keys(keys / "worker-2")
    w1_key = load_client_keys(keys / "worker-1")
    run_id = await engine.start_run("slow", {"seconds": 2})
    job_id = await _job_of(engine, "w1", run_id)
    forged = JobDone(job_id=job_id, run_id=run_id, delta={"slept": -1, "finished_by": "forger"})
    hello = Hello(worker_id="w1", pid=1, host="x", capacity=8, graphs={"slow": "forged"})
    with (
        raw_peer(engine.bind, w1_key.identity("w1"), own) as takeover,
        raw_peer(engine.bind, w1_key.identity("w1-other"), own) as neighbour,
        raw_peer(engine.bind, b"w1", own) as liar,
    ):
        for peer in (takeover, neighbour, liar):
            peer.send(forged.encode())
            peer.send(hello.encode())
            peer.send(Goodbye(worker_id="w1").encode())
        got = await asyncio.gather(replies(takeover, 1.5), replies(neighbour, 1.5), replies(liar, 1.5))
    assert got == [[], [], []]
    final = await engine.wait_finished(run_id)
    assert final["status"] == "completed"
    assert final["state"]["finished_by"] == "w1" and final["state"]["slept"] == 2
    assert [w["worker_id"] for w in await engine.workers_info()] == ["w1"]
    dropped = [e for e in log_events(engine.log_dir, "coordinator") if e["event"] == "frame_dropped"]
    reason = "its identity does not start with the key it authenticated with"
    assert sum(e["reason"] == reason for e in dropped) >= 6  # the neighbour's three and the liar's


def test_a_worker_pointed_at_the_coordinators_folder_is_told_which_folder_to_use(keys: Path, tmp_path: Path) -> None:
    flags = ["--curve-keys", str(keys), "--connect", "tcp://127.0.0.1:1", "--log-dir", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, "-m", "awe", "worker", *flags], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "the coordinator's key folder: give a worker its own folder inside it" in done.stderr


def test_the_secret_keys_are_not_readable_by_others(keys: Path) -> None:
    for secret in [keys / COORDINATOR_SECRET, *keys.glob(f"*/{WORKER_SECRET}")]:
        assert os.stat(secret).st_mode & 0o077 == 0, secret
