"""Log files rotate by size and keep a bounded number; every line says when, how bad, which process, which run.

The rotation is shown on real processes writing with a small ``--log-max-bytes``;
the guard against two processes sharing one file on two files opened here.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from engine import Engine

from awe.cli.parser import parse, to_flags
from awe.logs import RotatingFile

MAX_BYTES = 4000
BACKUPS = 2


@pytest.fixture
async def small_logs_engine(tmp_path: Path) -> AsyncIterator[Engine]:
    """A coordinator and one worker whose log files rotate past 4000 bytes, keeping two old ones."""
    env = {"AWE_LOG_MAX_BYTES": str(MAX_BYTES), "AWE_LOG_BACKUPS": str(BACKUPS)}
    async with Engine(tmp_path, env=env) as engine:
        await engine.start_coordinator()
        engine.start_worker(worker_id="w1")
        await engine.wait_for_workers(1)
        yield engine


def _lines(path: Path) -> list[dict[str, Any]]:
    text = path.read_text()
    assert text.endswith("\n"), f"{path.name} ends in the middle of a line"
    return [json.loads(line) for line in text.splitlines()]


async def test_a_process_rotates_its_file_keeping_at_most_backups_plus_one(small_logs_engine: Engine) -> None:
    engine = small_logs_engine
    run_id = await engine.start_run("chatty", {"lines": 60})  # about 25 kB of worker lines
    assert (await engine.wait_finished(run_id))["status"] == "completed"
    for proc in engine.workers:
        assert await engine.stop_process(proc) == 0  # its last lines are written before it exits

    files = sorted(engine.log_dir.glob("worker-w1.jsonl*"))
    assert [f.name for f in files] == ["worker-w1.jsonl", "worker-w1.jsonl.1", "worker-w1.jsonl.2"]
    kept: list[dict[str, Any]] = []
    for path in reversed(files):  # oldest first: .2, .1, then the current file
        lines = _lines(path)
        size = path.stat().st_size
        assert lines and (size <= MAX_BYTES or len(lines) == 1), (path.name, size)
        kept += lines
    # What is kept is the newest part of the log, in order, ending with the worker's last line.
    times = [line["timestamp"] for line in kept]
    assert times == sorted(times)
    assert kept[-1]["event"] == "worker_stopped"
    progress = [line["item"] for line in kept if line["event"] == "progress"]
    assert progress == list(range(60 - len(progress), 60)) and len(progress) < 60  # the oldest were rotated away
    for line in kept:
        assert {"timestamp", "level", "event"} <= line.keys(), line
        assert (line["role"], line["process"], line["worker"]) == ("worker", "worker-w1", "w1"), line
    for line in progress_lines(kept):
        assert (line["run_id"], line["node"]) == (run_id, "work"), line


def progress_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line["event"] == "progress"]


async def test_coordinator_lines_name_their_role_and_the_run_they_are_about(small_logs_engine: Engine) -> None:
    engine = small_logs_engine
    run_id = await engine.start_run("counter_loop", {"count": 0, "target": 2})
    assert (await engine.wait_finished(run_id))["status"] == "completed"
    assert engine.coordinator is not None
    assert await engine.stop_process(engine.coordinator) == 0

    lines = [line for path in sorted(engine.log_dir.glob("coordinator.jsonl*")) for line in _lines(path)]
    assert all(line["role"] == "coordinator" and line["process"] == "coordinator" for line in lines)
    assert all({"timestamp", "level", "event"} <= line.keys() for line in lines)
    about_the_run = [line["event"] for line in lines if line.get("run_id") == run_id]
    assert "run_queued" in about_the_run and "run_finished" in about_the_run


def test_a_second_process_with_the_same_file_name_writes_its_own_file(tmp_path: Path) -> None:
    first = RotatingFile(tmp_path / "worker-x.jsonl", max_bytes=1000, backups=1)
    second = RotatingFile(tmp_path / "worker-x.jsonl", max_bytes=1000, backups=1)
    try:
        assert first.path.name == "worker-x.jsonl"
        assert second.path.name == f"worker-x-{os.getpid()}.jsonl"  # the lock is held: rotating would pull
        for i in range(100):  # the file out from under the first
            first.write(json.dumps({"event": "first", "i": i}) + "\n")
            second.write(json.dumps({"event": "second", "i": i}) + "\n")
    finally:
        first.close()
        second.close()
    assert {line["event"] for line in _lines(tmp_path / "worker-x.jsonl")} == {"first"}
    assert {line["event"] for line in _lines(second.path)} == {"second"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"worker-x-{os.getpid()}.jsonl",
        f"worker-x-{os.getpid()}.jsonl.1",
        "worker-x.jsonl",
        "worker-x.jsonl.1",
    ]


@pytest.mark.parametrize(("text", "size"), [("4000", 4000), ("512kB", 512_000), ("10MB", 10_000_000), ("1gb", 10**9)])
def test_log_sizes_are_read_in_bytes_or_with_a_unit(text: str, size: int) -> None:
    invocation = parse(["worker", "--log-max-bytes", text])
    assert invocation.settings.log_max_bytes == size
    # awe up hands the value to its processes as a flag they read back the same.
    assert "--log-max-bytes" in to_flags("worker", invocation.settings)
    assert parse(["worker", *to_flags("worker", invocation.settings)]).settings == invocation.settings
