"""The ready queue: strict order within a line, except that a free worker may take a job it has the state of."""

from __future__ import annotations

from awe.coordinator.job_queue import JobQueue
from awe.coordinator.plan import JobSpec
from awe.coordinator.worker_pool import Needs

NEEDS = Needs("g", "fingerprint")


def _queue(*run_ids: str) -> JobQueue:
    queue = JobQueue()
    for run_id in run_ids:
        queue.append(JobSpec(run_id, "g", "n", 1, 1), NEEDS)
    return queue


def test_a_preferred_job_near_the_front_goes_first_and_the_rest_keep_their_order() -> None:
    queue = _queue("a", "b", "mine", "c")
    (line,) = queue.lines()
    assert queue.pop_preferred(line, lambda job: job.run_id == "mine", window=3).run_id == "mine"
    assert [job.run_id for job in queue] == ["a", "b", "c"]
    assert queue.pop_preferred(line, lambda job: job.run_id == "c", window=2).run_id == "a"  # c is past the window


def test_the_first_job_is_passed_over_at_most_window_times_in_a_row() -> None:
    queue = _queue("first", *(f"mine-{i}" for i in range(10)))
    (line,) = queue.lines()
    taken = [queue.pop_preferred(line, lambda job: job.run_id.startswith("mine"), window=3).run_id for _ in range(5)]
    assert taken == ["mine-0", "mine-1", "mine-2", "first", "mine-3"]
