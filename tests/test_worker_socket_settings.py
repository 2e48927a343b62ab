"""Who may reach the worker socket: loopback by default, the network only with CURVE keys (or when told)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import zmq
from engine import free_port, start_awe_up

from awe.cli.coordinator_process import InsecureBind, worker_endpoint
from awe.settings import Settings
from awe.transport import is_local_address
from awe.transport.curve import create_key_folder


@pytest.mark.parametrize(
    ("address", "local"),
    [
        ("tcp://127.0.0.1:5555", True),
        ("tcp://127.0.0.2:5555", True),
        ("tcp://localhost:5555", True),
        ("tcp://[::1]:5555", True),
        ("ipc:///tmp/awe.sock", True),
        ("inproc://awe", True),
        ("tcp://0.0.0.0:5555", False),
        ("tcp://*:5555", False),
        ("tcp://192.168.1.20:5555", False),
        ("tcp://eth0:5555", False),
        ("tcp://coordinator.example:5555", False),
        ("tcp://127.0.0.1.example.com:5555", False),
        ("tcp://[::ffff:192.168.1.20]:5555", False),
        ("pgm://239.192.1.1:5555", False),
    ],
)
def test_only_loopback_ipc_and_inproc_addresses_are_local(address: str, local: bool) -> None:
    assert is_local_address(address) is local


def test_the_coordinator_refuses_a_network_bind_without_keys(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "awe", "coordinator", "--bind", f"tcp://0.0.0.0:{free_port()}"]
    argv += ["--port", str(free_port()), "--db", str(tmp_path / "awe.db"), "--log-dir", str(tmp_path / "logs")]
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "reachable from other machines" in done.stderr
    for fix in ("--curve-keys", "awe keys --out", "--allow-insecure-workers on", "tcp://127.0.0.1"):
        assert fix in done.stderr


def test_allow_insecure_workers_lets_a_network_bind_through_the_check() -> None:
    # 192.0.2.1 (TEST-NET-1) is nobody's address: binding it fails, after the check, and binds nothing.
    settings = Settings(bind="tcp://192.0.2.1:5555")
    with pytest.raises(InsecureBind):
        worker_endpoint(settings)
    with pytest.raises(zmq.ZMQError):
        worker_endpoint(settings.replace(allow_insecure_workers=True))


def _workers(url: str) -> list[dict[str, object]]:
    try:
        with urllib.request.urlopen(f"{url}/workers", timeout=5) as response:
            return list(json.loads(response.read())["workers"])
    except OSError:
        return []


def test_awe_up_gives_the_coordinator_and_each_worker_their_keys(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    create_key_folder(keys, workers=2)
    too_many = start_awe_up(tmp_path, "--curve-keys", str(keys), "--workers", "3", stdout=subprocess.PIPE)[0]
    out, _ = too_many.communicate(timeout=60)
    assert too_many.returncode == 2
    assert "holds keys for 2 workers and --workers is 3" in out

    proc, url = start_awe_up(
        tmp_path, "--curve-keys", str(keys), "--workers", "2", "--graphs", "sample_graphs", stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while len(workers := _workers(url)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(workers) == 2, workers
        coordinator_log = (tmp_path / "logs" / "coordinator.jsonl").read_text()
        assert "worker_refused" not in coordinator_log
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
