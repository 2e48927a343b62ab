"""The jobs waiting for a worker, in one line per kind of worker they need.

Matching a job to a worker depends only on what the job needs (a graph's
code or a tool, a thread or a coroutine slot), and jobs that need the same
thing are interchangeable for that purpose. So the queue keeps one FIFO line
per :class:`~awe.coordinator.worker_pool.Needs`, and the dispatcher asks the
pool once per line rather than once per job: with thousands of jobs waiting
for busy thread slots, finding the next job a free worker can take stays as
cheap as the number of kinds. Across lines, the line whose first job has
waited longest goes first, so no kind starves another.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice

from awe.coordinator.plan import JobSpec
from awe.coordinator.worker_pool import Needs


@dataclass
class Line:
    """The jobs that need the same kind of worker, oldest first, with when each joined the queue."""

    needs: Needs
    jobs: deque[tuple[int, JobSpec]] = field(default_factory=deque)
    told: int = 0
    """How many jobs at the front of the line were told that no connected worker can run them."""
    passed: int = 0
    """How many times the first job was passed over for a preferred one behind it (see ``pop_preferred``)."""

    @property
    def head_order(self) -> int:
        return self.jobs[0][0]

    def untold(self) -> list[JobSpec]:
        """The jobs not told yet that they wait (then counted as told)."""
        fresh = [job for _, job in list(self.jobs)[self.told :]]
        self.told = len(self.jobs)
        return fresh


class JobQueue:
    def __init__(self) -> None:
        self._lines: dict[Needs, Line] = {}
        self._order = 0
        self._front = 0

    def __len__(self) -> int:
        return sum(len(line.jobs) for line in self._lines.values())

    def __iter__(self) -> Iterator[JobSpec]:
        for line in self._lines.values():
            for _, job in line.jobs:
                yield job

    def append(self, job: JobSpec, needs: Needs) -> None:
        self._order += 1
        self._line(needs).jobs.append((self._order, job))

    def appendleft(self, job: JobSpec, needs: Needs) -> None:
        """Back to the front (a job whose send failed): it goes before everything already waiting."""
        self._front -= 1
        line = self._line(needs)
        line.jobs.appendleft((self._front, job))
        line.told = 0

    def lines(self) -> list[Line]:
        """The lines with jobs, the one whose first job has waited longest first."""
        return sorted((line for line in self._lines.values() if line.jobs), key=lambda line: line.head_order)

    def pop(self, line: Line) -> JobSpec:
        _, job = line.jobs.popleft()
        line.told = max(0, line.told - 1)
        line.passed = 0
        if not line.jobs:
            del self._lines[line.needs]
        return job

    def pop_preferred(self, line: Line, rank: Callable[[JobSpec], int], *, window: int) -> JobSpec:
        """The first of the line's first ``window`` jobs with the lowest ``rank`` (0 is best: none is better).

        The first job is passed over at most ``window`` times in a row, so a job waits at most that
        many dispatches longer than it would in strict order, however many better jobs arrive.
        """
        if line.passed < window:
            best, best_rank = 0, -1
            for index, (_, job) in enumerate(islice(line.jobs, window)):
                job_rank = rank(job)
                if best_rank < 0 or job_rank < best_rank:
                    best, best_rank = index, job_rank
                    if job_rank == 0:
                        break
            if best > 0:
                _, job = line.jobs[best]
                del line.jobs[best]
                line.passed += 1
                if best < line.told:
                    line.told -= 1
                return job
        return self.pop(line)

    def remove(self, job_id: str) -> JobSpec | None:
        """Take a job out of line wherever it is (a returning worker reports it running): rare, linear."""
        for line in self._lines.values():
            for index, (_, job) in enumerate(line.jobs):
                if job.job_id == job_id:
                    del line.jobs[index]
                    line.told = min(line.told, len(line.jobs)) if index >= line.told else max(0, line.told - 1)
                    if not line.jobs:
                        del self._lines[line.needs]
                    return job
        return None

    def _line(self, needs: Needs) -> Line:
        line = self._lines.get(needs)
        if line is None:
            line = self._lines[needs] = Line(needs)
        return line
