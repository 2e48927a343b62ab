"""/metrics in the Prometheus text format: counters move as runs execute, levels say what is held now."""

from __future__ import annotations

import asyncio
import time

from engine import InProcessEngine
from prometheus_client.parser import text_string_to_metric_families


async def scrape(engine: InProcessEngine) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    assert engine.session is not None
    async with engine.session.get(f"{engine.url}/metrics") as r:
        assert r.status == 200 and r.content_type == "text/plain"
        text = await r.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_counters_move_as_runs_execute(engine: InProcessEngine) -> None:
    before = await scrape(engine)
    assert before[("awe_workers", ())] == 2
    for _ in range(3):
        await engine.wait_finished(await engine.start_run("counter_loop", {"count": 0, "target": 2}))
    await engine.wait_finished(await engine.start_run("failing", {}))
    after = await scrape(engine)
    assert after[("awe_runs_finished_total", (("graph", "counter_loop"), ("status", "completed")))] == 3
    assert after[("awe_runs_finished_total", (("graph", "failing"), ("status", "failed")))] == 1
    steps = (("graph", "counter_loop"), ("node", "increment"), ("outcome", "completed"))
    assert after[("awe_steps_total", steps)] == 6
    timing = (("graph", "counter_loop"), ("node", "increment"))
    assert after[("awe_step_duration_seconds_count", timing)] == 6
    assert after[("awe_db_commit_seconds_count", ())] > before.get(("awe_db_commit_seconds_count", ()), 0)
    assert after[("awe_jobs_in_flight", ())] == 0 and after[("awe_queued_jobs", ())] == 0
    # The process's own figures, for the operator's dashboards.
    assert after[("process_resident_memory_bytes", ())] > 10_000_000
    assert after[("process_cpu_seconds_total", ())] > 0
    assert ("python_gc_collections_total", (("generation", "2"),)) in after


async def test_levels_show_what_is_held_now(engine: InProcessEngine) -> None:
    run_id = await engine.start_run("approval", {"release": "v9"})  # pauses, asking a person
    await engine.wait_until(lambda: _paused(engine, run_id), what="the run to pause")
    now = await scrape(engine)
    assert now[("awe_active_runs", (("status", "paused"),))] == 1


async def _paused(engine: InProcessEngine, run_id: str) -> bool:
    return (await engine.state(run_id))["status"] == "paused"


async def test_a_step_writes_what_changed_not_the_whole_state(engine: InProcessEngine) -> None:
    """A 1 MB value no node touches is written when the run starts, not again at each of its ten steps."""
    megabyte = "x" * 1_000_000
    key = ("awe_db_written_characters_total", ())
    before = (await scrape(engine))[key]
    final = await engine.wait_finished(
        await engine.start_run("counter_loop", {"count": 0, "target": 10, "payload": megabyte})
    )
    assert final["status"] == "completed" and final["state"]["count"] == 10
    assert final["state"]["payload"] == megabyte
    written = (await scrape(engine))[key] - before
    # Once, as the initial state (the stored state is the initial one with the changed keys laid over
    # it): about 1 MB. Writing it as the state too would be 2 MB; at every step, more than 10 MB.
    assert 1_000_000 <= written < 1_500_000, written


async def test_event_loop_lag_shows_work_that_held_the_loop(engine: InProcessEngine) -> None:
    """The in-process engine shares this test's event loop: holding it for 0.4 s is seen as lag."""
    before = await scrape(engine)
    # Blocking the loop is the point. A sample falls due at most 0.1 s (loop_lag.INTERVAL) into the
    # block, so it comes at least 0.3 s late, whatever the timer's phase.
    time.sleep(0.4)
    await asyncio.sleep(0.25)  # a sample or two after it
    after = await scrape(engine)

    def late(figures: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> float:
        total = figures.get(("awe_event_loop_lag_seconds_count", ()), 0.0)
        return total - figures.get(("awe_event_loop_lag_seconds_bucket", (("le", "0.25"),)), 0.0)

    assert late(after) - late(before) >= 1  # one sample at least 0.25 s late


async def test_the_stores_files_and_checkpoints_are_shown(engine: InProcessEngine) -> None:
    """What the store takes on the disk, for an operator to alert on before it fills: each file's size."""
    large = "x" * 100_000  # past the values file's threshold: it goes beside the database
    run = await engine.wait_finished(await engine.start_run("counter_loop", {"count": 0, "target": 2, "big": large}))
    assert run["status"] == "completed"
    now = await scrape(engine)
    files = {file: now[("awe_db_file_bytes", (("file", file),))] for file in ("database", "log", "values")}
    assert files["values"] >= 100_000 and files["values"] == (engine.folder / "awe.db-values").stat().st_size
    # The log and the database only grow here (a start's report may still be written, a checkpoint may run).
    assert 0 < files["log"] <= (engine.folder / "awe.db-wal").stat().st_size
    assert 0 < files["database"] <= (engine.folder / "awe.db").stat().st_size
    assert ("awe_db_checkpoints_total", ()) in now and ("awe_db_log_restarts_total", ()) in now
