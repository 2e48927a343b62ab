"""Results that arrive from a peer before its ``Hello``, kept for that Hello: few, small and briefly.

After a coordinator restart, a worker that finished a job while the old
coordinator was down sends the result before it says Hello again (see
:meth:`~awe.coordinator.worker_messages.WorkerMessages._on_hello`). Such a
result is worth keeping only for a job a run still waits for, and only until
the Hello that should follow within a heartbeat period or two. Anyone who
reaches the worker socket can send results without saying Hello, so what is
kept is bounded in count per job, in bytes overall and in time: a flood of
results from unknown peers costs no memory that stays. A result dropped here
is never lost work: its job runs again.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from awe.transport.messages import JobDone, JobFailed

PER_JOB = 2
"""Results kept for one job id, from different peers: a peer that claims a job cannot crowd out the real one."""
MAX_BYTES = 32_000_000
"""The most frame bytes kept in all: the oldest results go first."""
MAX_COUNT = 1000
KEPT_SECONDS = 30.0
"""How long a result waits for its sender's Hello."""


@dataclass(frozen=True)
class EarlyResult:
    identity: bytes
    result: JobDone | JobFailed
    size: int
    arrived: float


class EarlyResults:
    def __init__(
        self,
        awaited: Callable[[JobDone | JobFailed], bool],
        *,
        max_bytes: int = MAX_BYTES,
        max_count: int = MAX_COUNT,
        kept_seconds: float = KEPT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``awaited``: whether a run still waits for the result's job (others are dropped at once)."""
        self.awaited = awaited
        self.max_bytes = max_bytes
        self.max_count = max_count
        self.kept_seconds = kept_seconds
        self.clock = clock
        self._kept: deque[EarlyResult] = deque()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._kept)

    def keep(self, identity: bytes, result: JobDone | JobFailed, size: int) -> bool:
        """Keep ``result`` from ``identity`` for its Hello; False (dropped) if it is not worth its memory."""
        self._expire()
        if size > self.max_bytes or not self.awaited(result):
            return False
        same_job = [e for e in self._kept if e.result.job_id == result.job_id]
        if len(same_job) >= PER_JOB or any(e.identity == identity for e in same_job):
            return False
        self._kept.append(EarlyResult(identity, result, size, self.clock()))
        self.bytes += size
        while self.bytes > self.max_bytes or len(self._kept) > self.max_count:
            self._drop_oldest()
        return True

    def take(self, identity: bytes) -> list[JobDone | JobFailed]:
        """The results ``identity`` sent before its Hello, oldest first; they are no longer kept."""
        self._expire()
        taken = [e for e in self._kept if e.identity == identity]
        if taken:
            self._kept = deque(e for e in self._kept if e.identity != identity)
            self.bytes -= sum(e.size for e in taken)
        return [e.result for e in taken]

    def _expire(self) -> None:
        deadline = self.clock() - self.kept_seconds
        while self._kept and self._kept[0].arrived < deadline:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        self.bytes -= self._kept.popleft().size
