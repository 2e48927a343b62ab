"""``awe backup``: a copy of the store, made while the engine runs, that a coordinator starts from."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from engine import TESTS_DIR, Engine

DOCUMENT = "d" * 100_000  # past LARGE_CHARACTERS: kept in the values file beside the database


def _backup(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "awe", "backup", *args],
        cwd=TESTS_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_a_backup_made_while_runs_go_on_is_a_store_a_coordinator_starts_from(tmp_path: Path) -> None:
    for folder in ("engine", "restored"):
        (tmp_path / folder).mkdir()
    engine = Engine(tmp_path / "engine")
    restored = Engine(tmp_path / "restored")
    try:
        await engine.start(workers=1)
        done = await engine.start_run("counter_loop", {"count": 0, "target": 3, "document": DOCUMENT})
        before = await engine.wait_finished(done)
        going = await engine.start_run("slow", {"seconds": 1, "document": DOCUMENT})  # still running at the copy
        copy = tmp_path / "restored" / "awe.db"

        made = _backup(str(copy), "--db", str(engine.db))
        assert made.returncode == 0, made.stderr
        assert f"to {copy} (" in made.stdout and "bytes of large values" in made.stdout
        after = await engine.start_run("counter_loop", {"count": 0, "target": 1})  # after the copy: not in it
        await engine.wait_finished(going)
        await engine.close()

        await restored.start(workers=1)
        assert await restored.state(done) == before  # its large value read from the copied values file
        assert (await restored.wait_finished(going))["state"]["document"] == DOCUMENT  # resumed from the copy
        status, _ = await restored.request("GET", f"/runs/{after}")
        assert status == 404
    finally:
        await engine.close()
        await restored.close()


def test_a_backup_never_overwrites_and_names_a_missing_database(tmp_path: Path) -> None:
    missing = _backup(str(tmp_path / "copy.db"), "--db", str(tmp_path / "nowhere.db"))
    assert missing.returncode == 1
    assert "nowhere.db is not a database file: name the engine's with --db" in missing.stderr

    (tmp_path / "awe.db").touch()
    existing = tmp_path / "copy.db"
    existing.write_text("something precious")
    refused = _backup(str(existing), "--db", str(tmp_path / "awe.db"))
    assert refused.returncode == 1
    assert "copy.db exists: a backup never overwrites a file; name a new one" in refused.stderr
    assert existing.read_text() == "something precious"
