"""What ``awe up`` prints: where the API, docs, page and metrics are; then its processes' events, readably."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from engine import start_awe_up

CONSOLE_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z \[(debug|info|warning|error)\s*\] (\w+)\s")


def _open(url: str, data: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as r:
        return r.status, r.read()


def test_awe_up_says_where_everything_is_then_shows_the_events_of_its_files(tmp_path: Path) -> None:
    proc, url = start_awe_up(tmp_path, "--workers", "1", "--graphs", "sample_graphs", stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        seen: list[str] = []
        deadline = time.monotonic() + 30
        while not any(line.startswith("  metrics") for line in seen) and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, f"awe up ended early:\n{''.join(seen)}"
            seen.append(line)
        addresses = {line.split()[0]: line.split()[1] for line in seen if line.startswith("  ")}
        assert addresses == {"API": url, "docs": f"{url}/docs", "page": f"{url}/", "metrics": f"{url}/metrics"}
        # Each address answers (the page is served by the web interface, tested with it).
        assert _open(f"{url}/healthz")[0] == 200
        assert b"swagger-ui-bundle.js" in _open(addresses["docs"])[1]
        assert _open(f"{url}/openapi.json")[0] == 200
        assert b"awe_workers" in _open(addresses["metrics"])[1]

        body = json.dumps({"graph_id": "counter_loop", "initial_state": {"count": 0, "target": 2}}).encode()
        run_id = json.loads(_open(f"{url}/graph/run", body)[1])["run_id"]
        deadline = time.monotonic() + 20
        while json.loads(_open(f"{url}/runs/{run_id}")[1])["status"] != "completed":
            assert time.monotonic() < deadline, "the run did not complete"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    output = "".join(seen) + rest
    assert "\x1b[" not in output, "colours on a console that is not a terminal"
    console = [m for m in map(CONSOLE_LINE.match, output.splitlines()) if m]
    assert not [line for line in output.splitlines() if line.startswith("{")], "JSON lines on the console"

    # The events the log files record about the run are on the console too, one readable line each.
    files = [*(tmp_path / "logs").glob("coordinator.jsonl"), *(tmp_path / "logs").glob("worker-*.jsonl")]
    recorded = [json.loads(line) for path in files for line in path.read_text().splitlines()]
    about_run = [line for line in recorded if line.get("run_id") == run_id]
    assert {"run_queued", "job_received", "job_finished", "run_finished"} <= {line["event"] for line in about_run}
    shown = [m.string for m in console if f"run_id={run_id}" in m.string]
    assert sorted(CONSOLE_LINE.match(line).group(2) for line in shown) == sorted(  # type: ignore[union-attr]
        line["event"] for line in about_run
    )
    for line in shown:
        assert "process=" in line and "pid=" not in line and "role=" not in line, line
