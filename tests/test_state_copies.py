"""Jobs carry only the state keys that changed since the copy the worker keeps; a missing copy costs a resend."""

from __future__ import annotations

from pathlib import Path

from engine import InProcessEngine
from test_metrics import scrape

from awe.coordinator.state_copies import StateCopies
from awe.transport.messages import Job
from awe.workers.state_cache import StateCache

MEGABYTE = "x" * 1_000_000


def _job(run_id: str, state: dict[str, object], *, base: int = 0, version: int = 0, removed: list[str] | None = None):
    return Job("j", run_id, "g", "n", 1, 1, state, base=base, version=version, removed=removed or [])


def test_a_worker_is_sent_the_whole_state_once_then_what_changed() -> None:
    copies = StateCopies()
    first = {"big": MEGABYTE, "count": 1, "gone": True}
    assert copies.rank("r1", b"w1") == 1  # no worker keeps it: its whole state goes wherever it goes
    whole = copies.to_send("r1", b"w1", first)
    assert (copies.rank("r1", b"w1"), copies.rank("r1", b"w2")) == (0, 2)  # only the change / all of it again
    assert whole.base == 0 and whole.state is first and whole.version > 0
    second = {**{k: v for k, v in first.items() if k != "gone"}, "count": 2}
    delta = copies.to_send("r1", b"w1", second)
    assert (delta.state, delta.removed, delta.base) == ({"count": 2}, ["gone"], whole.version)
    assert copies.to_send("r1", b"w2", second).base == 0  # another worker has no copy yet
    copies.forget_worker(b"w1")
    assert copies.to_send("r1", b"w1", second).base == 0


def test_the_worker_rebuilds_the_whole_state_or_says_it_lacks_the_base() -> None:
    cache = StateCache(budget_bytes=10_000_000)
    assert cache.whole(_job("r1", {"big": MEGABYTE, "count": 1, "gone": 1}, version=7), 1_000_100) is not None
    rebuilt = cache.whole(_job("r1", {"count": 2}, base=7, version=8, removed=["gone"]), 50)
    assert rebuilt is not None and rebuilt.state == {"big": MEGABYTE, "count": 2} and rebuilt.base == 0
    assert cache.whole(_job("r1", {"count": 3}, base=7, version=9), 50) is None  # 7 was replaced by 8
    assert cache.whole(_job("r2", {"count": 1}, base=8, version=9), 50) is None  # never had r2


def test_the_oldest_copies_go_first_and_the_newest_stays_whatever_its_size() -> None:
    cache = StateCache(budget_bytes=2_500_000)
    for run_id, version in (("a", 1), ("b", 2), ("c", 3)):
        cache.whole(_job(run_id, {"big": MEGABYTE}, version=version), 1_000_000)
    assert cache.whole(_job("a", {}, base=1, version=4), 10) is None
    assert cache.whole(_job("b", {}, base=2, version=5), 10) is not None
    huge = StateCache(budget_bytes=10)
    huge.whole(_job("a", {"big": MEGABYTE}, version=1), 1_000_000)
    assert huge.whole(_job("a", {}, base=1, version=2), 10) is not None


def test_an_ended_run_is_told_once_to_each_worker_that_keeps_its_copy() -> None:
    copies = StateCopies()
    for run_id, worker in (("r1", b"w1"), ("r1", b"w2"), ("r2", b"w1"), ("r3", b"w1")):
        copies.to_send(run_id, worker, {"n": 1})
    copies.forget_run("r1")
    copies.forget_run("r2")
    assert copies.take_ended(b"w1") == ["r1", "r2"] and copies.take_ended(b"w1") == []
    assert copies.take_ended(b"w2") == ["r1"]
    copies.forget_run("r3")
    copies.forget_worker(b"w1")  # perhaps a new process: it keeps nothing to let go of
    assert copies.take_ended(b"w1") == []


def test_the_worker_lets_go_of_the_copies_of_ended_runs_and_their_room() -> None:
    cache = StateCache(budget_bytes=2_500_000)
    for run_id, version in (("r1", 1), ("r2", 2)):
        cache.whole(_job(run_id, {"big": MEGABYTE}, version=version), 1_000_000)
    cache.drop(["r1", "never-kept"])
    assert "r1" not in cache and "r2" in cache
    cache.whole(_job("r3", {"big": MEGABYTE}, version=3), 1_000_000)  # fits beside r2: r1's room was given back
    assert "r2" in cache and "r3" in cache


async def test_workers_let_go_of_the_states_of_runs_that_ended(tmp_path: Path) -> None:
    async with InProcessEngine(tmp_path) as engine:
        await engine.start_coordinator()
        worker = engine.start_worker()
        await engine.wait_for_workers(1)
        ended = []
        for _ in range(3):
            run_id = await engine.start_run("counter_loop", {"count": 0, "target": 2, "payload": "x" * 100_000})
            assert (await engine.wait_finished(run_id))["status"] == "completed"
            ended.append(run_id)
        assert [run_id in worker.states for run_id in ended] == [False, False, True]  # told with the next run's job
        last = await engine.start_run("counter_loop", {"count": 0, "target": 2, "payload": "y" * 100_000})
        assert (await engine.wait_finished(last))["status"] == "completed"
        assert not any(run_id in worker.states for run_id in ended)  # told with the next run's first job
        assert last in worker.states


async def test_an_unchanged_megabyte_crosses_the_wire_once_per_worker(engine: InProcessEngine) -> None:
    before = await scrape(engine)
    final = await engine.wait_finished(
        await engine.start_run("counter_loop", {"count": 0, "target": 10, "payload": MEGABYTE})
    )
    assert final["status"] == "completed" and final["state"]["count"] == 10
    assert final["state"]["payload"] == MEGABYTE
    after = await scrape(engine)
    sent = after[("awe_job_bytes_sent_total", ())] - before[("awe_job_bytes_sent_total", ())]
    assert 1_000_000 < sent < 2_200_000, sent  # once or twice (two workers), not ten times
    assert after[("awe_whole_states_resent_total", ())] == before[("awe_whole_states_resent_total", ())]


async def test_workers_that_keep_no_states_are_sent_the_whole_state_every_time(tmp_path: Path) -> None:
    async with InProcessEngine(tmp_path) as engine:
        await engine.start_coordinator()
        engine.start_worker(state_cache_bytes=0)
        await engine.wait_for_workers(1)
        final = await engine.wait_finished(
            await engine.start_run("counter_loop", {"count": 0, "target": 10, "payload": MEGABYTE})
        )
        assert final["status"] == "completed" and final["state"]["payload"] == MEGABYTE
        sent = (await scrape(engine))[("awe_job_bytes_sent_total", ())]
        assert sent > 10_000_000, sent


async def test_a_worker_that_lost_the_copy_gets_the_whole_state_and_the_runs_are_right(tmp_path: Path) -> None:
    """A cache too small for two runs' states: every other job names a copy the worker has let go."""
    async with InProcessEngine(tmp_path) as engine:
        await engine.start_coordinator()
        engine.start_worker(state_cache_bytes=1)
        await engine.wait_for_workers(1)
        payloads = [f"{i}" * 200_000 for i in range(3)]
        run_ids = [
            await engine.start_run("counter_loop", {"count": 0, "target": 6, "payload": payload})
            for payload in payloads
        ]
        for run_id, payload in zip(run_ids, payloads, strict=True):
            final = await engine.wait_finished(run_id)
            assert final["status"] == "completed", final
            assert final["state"]["count"] == 6 and final["state"]["payload"] == payload
            assert len(final["state"]["trace"]) == 6
        assert (await scrape(engine))[("awe_whole_states_resent_total", ())] > 0
