"""supervisord.conf runs the same processes as ``awe up``: a coordinator and a numprocs worker pool."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from engine import free_port

REPO = Path(__file__).parent.parent


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=2) as r:
        return json.loads(r.read())


def _wait_for(predicate, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.skipif(shutil.which("supervisord") is None, reason="supervisor is a test extra: pip install -e '.[test]'")
def test_supervisord_runs_the_engine_and_restarts_a_killed_worker(tmp_path: Path) -> None:
    shutil.copy(REPO / "supervisord.conf", tmp_path / "supervisord.conf")
    port, zmq_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "AWE_PORT": str(port),
        "AWE_BIND": f"tcp://127.0.0.1:{zmq_port}",
        "AWE_CONNECT": f"tcp://127.0.0.1:{zmq_port}",
        "AWE_HEARTBEAT_INTERVAL": "0.2",
    }
    proc = subprocess.Popen(
        ["supervisord", "-c", str(tmp_path / "supervisord.conf")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        workers = _wait_for(
            lambda: len(_get(f"{url}/workers")["workers"]) == 2 and _get(f"{url}/workers")["workers"], "2 workers"
        )
        assert all("-worker-0" in w["worker_id"] for w in workers)

        body = json.dumps({"graph_id": "code_review_agent", "initial_state": {"raw_code": "def f(x):\n    return x\n"}})
        request = urllib.request.Request(
            f"{url}/graph/run", data=body.encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=5) as r:
            run_id = json.loads(r.read())["run_id"]
        final = _wait_for(lambda: (s := _get(f"{url}/graph/state/{run_id}"))["status"] == "completed" and s, "the run")
        assert final["state"]["functions"][0]["name"] == "f"
        assert (tmp_path / "awe.db").exists() and (tmp_path / "logs" / "coordinator.jsonl").exists()

        victim = workers[0]
        time.sleep(1.2)  # past supervisord's startsecs, so the death counts as a crash to restart
        os.kill(victim["pid"], signal.SIGKILL)

        def worker_pids() -> set[int]:
            return {w["pid"] for w in _get(f"{url}/workers")["workers"]}

        def replaced() -> set[int] | None:
            current = worker_pids()
            return current if len(current) == 2 and victim["pid"] not in current else None

        pids = _wait_for(replaced, "supervisord to replace the killed worker")
        pids.add(_coordinator_pid(tmp_path))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert proc.returncode == 0
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


def _coordinator_pid(folder: Path) -> int:
    for line in (folder / "logs" / "coordinator.jsonl").read_text().splitlines():
        entry = json.loads(line)
        if entry.get("event") == "coordinator_ready":
            return int(entry["pid"])
    raise AssertionError("no coordinator_ready line")
