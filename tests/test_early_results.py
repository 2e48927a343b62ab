"""Results that come before their sender's Hello: kept only for awaited jobs, a few per job, briefly, in a budget."""

from __future__ import annotations

from awe.coordinator.early_results import PER_JOB, EarlyResults
from awe.transport.messages import JobDone, JobFailed


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def done(job_id: str, run_id: str = "r1") -> JobDone:
    return JobDone(job_id=job_id, run_id=run_id, delta={})


def awaiting(*job_ids: str) -> EarlyResults:
    return EarlyResults(lambda result: result.job_id in job_ids, max_bytes=1000, max_count=4, clock=Clock())


def test_a_result_for_a_job_nobody_waits_for_is_dropped_at_once() -> None:
    early = awaiting("j1")
    assert not early.keep(b"peer", done("j2"), 10)
    assert len(early) == 0


def test_the_hello_takes_its_senders_results_in_order_and_only_those() -> None:
    early = awaiting("j1", "j2")
    first, second = done("j1"), JobFailed(job_id="j2", run_id="r1", error={})
    assert early.keep(b"w1", first, 10) and early.keep(b"w1", second, 10) and early.keep(b"w2", done("j1"), 10)
    assert early.take(b"w1") == [first, second]
    assert early.take(b"w1") == []
    assert len(early) == 1 and early.bytes == 10


def test_a_job_keeps_a_few_results_one_per_peer() -> None:
    early = EarlyResults(lambda result: True, clock=Clock())
    assert early.keep(b"w1", done("j1"), 10)
    assert not early.keep(b"w1", done("j1"), 10)  # the same peer twice
    for i in range(2, PER_JOB + 5):
        early.keep(f"w{i}".encode(), done("j1"), 10)
    assert len(early) == PER_JOB


def test_the_budget_in_bytes_and_count_drops_the_oldest() -> None:
    early = awaiting("a", "b", "c", "d", "e", "f")
    for job_id in "abcdef":
        early.keep(job_id.encode(), done(job_id), 300)
    assert early.bytes <= 1000 and len(early) == 3
    assert early.take(b"a") == [] and early.take(b"f") != []
    assert not early.keep(b"big", done("a"), 1001)  # over the whole budget on its own


def test_a_result_whose_hello_does_not_come_expires() -> None:
    clock = Clock()
    early = EarlyResults(lambda result: True, kept_seconds=30, clock=clock)
    early.keep(b"w1", done("j1"), 10)
    clock.now += 31
    assert early.take(b"w1") == []
    assert early.bytes == 0
