"""The ``awe`` command line: ``awe up`` starts and stops everything; bad input exits non-zero, readably."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from engine import TESTS_DIR, free_port, start_awe_up
from store_records import open_store, run_record

from awe.store.values import LARGE_CHARACTERS


def _awe(*args: str, cwd: Path = TESTS_DIR, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "awe", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def _children_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False).stdout
    return [int(p) for p in out.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie counts as gone
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=2) as r:
        return json.loads(r.read())


def test_awe_up_serves_runs_and_stops_every_process_on_sigterm(tmp_path: Path) -> None:
    proc, url = start_awe_up(tmp_path, "--workers", "3", "--graphs", "sample_graphs", stdout=subprocess.PIPE)
    children: list[int] = []
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        deadline = time.monotonic() + 20
        while "awe is up" not in ready and time.monotonic() < deadline:
            ready = proc.stdout.readline()
        assert f"awe is up: {url} with 3 workers" in ready
        deadline = time.monotonic() + 20
        while len(_get(f"{url}/workers")["workers"]) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(_get(f"{url}/workers")["workers"]) == 3
        children = _children_of(proc.pid)
        assert len(children) == 4  # a coordinator and three workers

        request = urllib.request.Request(
            f"{url}/graph/run",
            data=json.dumps({"graph_id": "counter_loop", "initial_state": {"count": 0, "target": 3}}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as r:
            run_id = json.loads(r.read())["run_id"]
        deadline = time.monotonic() + 20
        while _get(f"{url}/graph/state/{run_id}")["status"] != "completed" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _get(f"{url}/graph/state/{run_id}")["state"]["count"] == 3

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert not [pid for pid in children if _alive(pid)]
        logs = sorted(p.name for p in (tmp_path / "logs").iterdir())
        assert "coordinator.jsonl" in logs and sum(n.startswith("worker-") for n in logs) == 3
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for pid in children:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        assert proc.stdout is not None
        proc.stdout.close()  # left to the garbage collector, it is a ResourceWarning, an error here


def test_awe_up_replaces_a_worker_that_dies(tmp_path: Path) -> None:
    proc, url = start_awe_up(tmp_path, "--workers", "1", "--heartbeat-interval", "0.2", stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        workers: list = []
        while time.monotonic() < deadline:
            try:
                workers = _get(f"{url}/workers")["workers"]
            except OSError:
                workers = []
            if workers:
                break
            time.sleep(0.1)
        assert len(workers) == 1
        first_pid = workers[0]["pid"]
        os.kill(first_pid, signal.SIGKILL)  # a kill, even right after the start, is a crash to recover from
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            workers = _get(f"{url}/workers")["workers"]
            if [w["pid"] for w in workers] not in ([], [first_pid]):
                break
            time.sleep(0.1)
        assert len(workers) == 1 and workers[0]["pid"] != first_pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_a_graph_module_that_fails_to_import_stops_the_start_with_its_traceback(tmp_path: Path) -> None:
    (tmp_path / "broken_graphs.py").write_text("import definitely_not_a_module_xyz\n")
    for command in (
        ["up", "--db", str(tmp_path / "x.db")],
        ["coordinator", "--db", str(tmp_path / "x.db")],
        ["worker"],
    ):
        result = _awe(*command, "--graphs", "broken_graphs", "--log-dir", str(tmp_path / "logs"), cwd=tmp_path)
        assert result.returncode == 2, (command, result)
        assert "Traceback" in result.stderr and "definitely_not_a_module_xyz" in result.stderr
        assert "cannot import graph module 'broken_graphs'" in result.stderr


def test_a_graph_that_does_not_compile_is_named(tmp_path: Path) -> None:
    (tmp_path / "bad_topology.py").write_text(
        "from awe import Graph, END\n"
        "g = Graph('lost')\n"
        "g.add_node('a', lambda s: None)\n"
        "g.add_node('b', lambda s: None)\n"
        "g.add_edge('a', END)\n"
        "g.set_entry_point('a')\n"
    )
    result = _awe(
        "coordinator",
        "--graphs",
        "bad_topology",
        "--log-dir",
        str(tmp_path / "logs"),
        "--db",
        str(tmp_path / "x.db"),
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "node 'b' cannot be reached" in result.stderr


@pytest.mark.parametrize(
    "args,words",
    [
        (["up", "--workers", "0"], "at least 1"),
        (["up", "--port", "70000"], "not a TCP port"),
        (["worker", "--capacity", "many"], "expected a whole number, got 'many'"),
        (["worker", "--log-max-bytes", "10"], "expected at least 1000 bytes, got 10"),
        (["up", "--log-max-bytes", "lots"], "expected a number of bytes (like 10000000 or 10MB), got 'lots'"),
        (["coordinator", "--log-backups", "-1"], "at least 0"),
        (["coordinator", "--log-console", "maybe"], "expected on or off"),
        (["fly"], "invalid choice"),
    ],
)
def test_bad_options_exit_non_zero_with_a_message(args: list[str], words: str) -> None:
    result = _awe(*args)
    assert result.returncode == 2
    assert words in result.stderr


def test_bad_environment_variable_is_reported(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "awe", "up"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "AWE_PORT": "eighty"},
    )
    assert result.returncode != 0
    assert "AWE_PORT='eighty': 'eighty' is not a TCP port" in result.stderr


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _awe(
            "coordinator",
            "--port",
            str(port),
            "--bind",
            f"tcp://127.0.0.1:{free_port()}",
            "--db",
            str(tmp_path / "x.db"),
            "--log-dir",
            str(tmp_path / "logs"),
            cwd=tmp_path,
        )
    assert result.returncode == 1
    assert "cannot start the coordinator" in result.stderr


def test_a_lost_values_file_is_named_and_the_coordinator_does_not_start(tmp_path: Path) -> None:
    """An unfinished run whose large state is in ``<db>-values``: without the file it cannot go on."""
    db = tmp_path / "awe.db"
    state = {"document": "d" * (LARGE_CHARACTERS + 1)}

    async def write_run() -> None:
        async with open_store(db) as store:
            await store.write([run_record("r", state, initial_state=state)])

    asyncio.run(write_run())
    (tmp_path / "awe.db-values").unlink()
    result = _awe(
        "coordinator",
        "--port",
        str(free_port()),
        "--bind",
        f"tcp://127.0.0.1:{free_port()}",
        "--db",
        str(db),
        "--log-dir",
        str(tmp_path / "logs"),
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "cannot start the coordinator" in result.stderr and "awe.db-values cannot be read" in result.stderr


def _wait_for_worker_pid(url: str, not_in: set[int]) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            pids = [w["pid"] for w in _get(f"{url}/workers")["workers"]]
        except OSError:
            pids = []
        fresh = [p for p in pids if p not in not_in]
        if fresh:
            return int(fresh[0])
        time.sleep(0.05)
    raise AssertionError("no new worker joined")


def test_a_worker_killed_twice_soon_after_its_start_comes_back_without_a_growing_delay(tmp_path: Path) -> None:
    """Only a child failing to start (an error exit) waits longer each time; a killed one is back in 1 s."""
    proc, url = start_awe_up(tmp_path, "--workers", "1", "--heartbeat-interval", "0.2", stdout=subprocess.PIPE)
    try:
        seen: set[int] = set()
        for _ in range(3):
            pid = _wait_for_worker_pid(url, seen)
            seen.add(pid)
            if len(seen) < 3:
                os.kill(pid, signal.SIGKILL)  # each within seconds of its start
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    restarts = [line for line in output.splitlines() if "worker-1 exited with code -9" in line]
    assert restarts == ["awe: worker-1 exited with code -9; restarting in 1s"] * 2, output


def test_awe_up_with_a_token_on_its_command_line_keeps_it_off_its_childrens(tmp_path: Path) -> None:
    token = "a-token-given-on-the-command-line-42"
    proc, url = start_awe_up(tmp_path, "--workers", "1", "--token", token, stdout=subprocess.PIPE)
    children: list[int] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 20
        while "awe is up" not in proc.stdout.readline() and time.monotonic() < deadline:
            pass
        children = _children_of(proc.pid)
        assert len(children) == 2  # the coordinator and the worker
        for pid in children:
            assert token not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(), "the token shows in ps"
        with pytest.raises(urllib.error.HTTPError) as refused:
            _get(f"{url}/workers")
        assert refused.value.code == 401
        refused.value.close()
        authorized = urllib.request.Request(f"{url}/workers", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(authorized, timeout=5) as r:
            assert r.status == 200
        assert _get(f"{url}/healthz")["status"] == "ok"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for pid in children:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        assert proc.stdout is not None
        proc.stdout.close()
