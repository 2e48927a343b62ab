"""The command line as a client of the API: awe run --follow, status, runs, workers, logs."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from engine import InProcessEngine


async def awe(engine: InProcessEngine, *args: str) -> tuple[int, str, str]:
    """``awe ARGS --url <engine>`` in a child process, while the engine keeps serving in this loop."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "awe",
        *args,
        "--url",
        engine.url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_awe_run_follow_prints_the_events_and_exits_0_when_the_run_completes(engine: InProcessEngine) -> None:
    code, out, err = await awe(
        engine, "run", "code_review_agent", "--state", '{"raw_code": "def f():\\n  return 1\\n"}', "--follow"
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("run ") and "code_review_agent" in lines[0]
    names = [line.split()[1] for line in lines[1:]]
    assert names[0] == "run_queued" and names[-1] == "run_completed"
    assert "node_started" in names and any("extract_functions" in line for line in lines)


async def test_a_failing_run_exits_non_zero_and_bad_state_exits_2(engine: InProcessEngine, tmp_path: Path) -> None:
    code, out, _ = await awe(engine, "run", "failing", "--follow")
    assert code == 1 and out.splitlines()[-1].split()[1] == "run_failed"
    code, _, err = await awe(engine, "run", "failing", "--state", "{not json")
    assert code == 2 and "--state is not JSON" in err
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"count": 0, "target": 2}))
    code, out, _ = await awe(engine, "run", "counter_loop", "--state", f"@{state}", "--follow")
    assert code == 0 and "run_completed" in out


async def test_status_runs_workers_and_logs(engine: InProcessEngine) -> None:
    run_id = await engine.start_run("counter_loop", {"count": 0, "target": 2})
    await engine.wait_finished(run_id)
    code, out, _ = await awe(engine, "status", run_id)
    assert code == 0 and out.startswith(f"{run_id}  completed  counter_loop") and '"count": 2' in out
    code, out, _ = await awe(engine, "runs", "--status", "completed")
    assert code == 0 and run_id in out
    code, out, _ = await awe(engine, "workers")
    assert code == 0 and len(out.splitlines()) == 2 and "capacity 4 (+1000 async)" in out
    code, out, _ = await awe(engine, "logs", run_id)
    assert code == 0 and out.splitlines()[-1].split()[1] == "run_completed"
    code, _, err = await awe(engine, "status", "no-such-run")
    assert code == 1 and "unknown run" in err
