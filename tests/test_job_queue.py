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
    assert queue.pop_preferred(line, lambda job: 0 if job.run_id == "mine" else 1, window=3).run_id == "mine"
    assert [job.run_id for job in queue] == ["a", "b", "c"]
    c_first = lambda job: 0 if job.run_id == "c" else 1  # noqa: E731
    assert queue.pop_preferred(line, c_first, window=2).run_id == "a"  # c is past the window


def test_the_first_job_is_passed_over_at_most_window_times_in_a_row() -> None:
    queue = _queue("first", *(f"mine-{i}" for i in range(10)))
    (line,) = queue.lines()
    mine_first = lambda job: 0 if job.run_id.startswith("mine") else 1  # noqa: E731
    taken = [queue.pop_preferred(line, mine_first, window=3).run_id for _ in range(5)]
    assert taken == ["mine-0", "mine-1", "mine-2", "first", "mine-3"]


def test_a_better_job_goes_first_and_a_tie_goes_to_the_one_in_front() -> None:
    """A worker's own run's job first (rank 0), then a new run's (1), before one whose state another keeps (2)."""
    queue = _queue("elsewhere", "new", "also-new", "mine")
    ranks = {"elsewhere": 2, "new": 1, "also-new": 1, "mine": 0}
    (line,) = queue.lines()
    taken = [queue.pop_preferred(line, lambda job: ranks[job.run_id], window=4).run_id for _ in range(4)]
    assert taken == ["mine", "new", "also-new", "elsewhere"]
