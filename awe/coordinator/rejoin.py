"""What a worker's ``Hello`` means for the jobs between it and the coordinator: pure arithmetic, no I/O.

A worker says ``Hello`` when it starts, each time the coordinator asks (a
``Rejoin`` answers every message from a worker it does not know, so Hellos
come in bursts) and when the coordinator has been silent too long. Each Hello
replaces the coordinator's entry for that identity, and the jobs of the old
entry are sorted out here, as are the jobs the worker says it has:

* **kept**: the worker names the job in ``running`` (or sent its result just
  before this Hello), or it is the same process and the job was sent after the
  process counted ``jobs_received``: the job is still on the wire to it.
* **lost**: every other job of the old entry; its run sends it again.
* **adopted**: a job the worker reports that the old entry did not hold but
  the coordinator waits for (a resumed run's job, held back for this Hello).
* **cancelled**: a job the worker reports running that nobody waits for.

A job the worker runs holds one of its slots whatever the coordinator thinks
of it: a cancelled job until the worker answers the ``CancelJob`` (and a sync
node's thread longer still, which the worker then reports as ``stuck``). So
cancelled jobs become the entry's *orphans*, counted in its free slots until
the worker reports them ended; a same-process Hello that still names an
orphan keeps it without cancelling it again.

:mod:`~awe.coordinator.dispatcher` gathers the inputs and carries the
decision out.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass, field

RESTARTED = "worker restarted"
"""Why a job is lost when the worker's process changed: the new process never had it."""

DROPPED = "worker no longer runs it"
"""Why a job is lost when the same process received it, does not run it and sent no result for it."""


@dataclass(frozen=True)
class PreviousEntry:
    """What the coordinator knew of the same worker identity before this Hello."""

    pid: int
    jobs_sent: int
    """Jobs sent to that process, counted from the process's own count when it joined."""
    sent: Mapping[str, int] = field(default_factory=dict)
    """Job id to the job's number among the jobs sent to the process (0: the worker reported it)."""
    orphans: Set[str] = frozenset()
    """Jobs the worker reported that were not ours, already told to stop, still holding slots."""


@dataclass(frozen=True)
class HelloReport:
    """What the worker says in its Hello, plus the results it sent before it (``finished``)."""

    pid: int
    running: tuple[str, ...] = ()
    jobs_received: int = 0
    finished: tuple[str, ...] = ()

    @property
    def finished_ids(self) -> frozenset[str]:
        return frozenset(self.finished)

    @property
    def running_ids(self) -> frozenset[str]:
        """Jobs still running; a job with a result already sent has ended, even if also listed."""
        return frozenset(self.running) - self.finished_ids

    @property
    def reported_ids(self) -> frozenset[str]:
        """Every job this process has from us or a previous coordinator: running or just finished."""
        return frozenset(self.running) | self.finished_ids


@dataclass(frozen=True)
class LostJob:
    job_id: str
    reason: str


@dataclass(frozen=True)
class RejoinDecision:
    """What becomes of each job; every tuple is sorted, so the outcome does not depend on set order."""

    jobs_sent: int
    """The new entry's count of jobs sent to the process, which numbers the next job sent."""
    kept: tuple[str, ...] = ()
    """Jobs of the previous entry that stay assigned, with their send numbers."""
    lost: tuple[LostJob, ...] = ()
    adopted: tuple[str, ...] = ()
    """Reported jobs the coordinator waits for: assigned to the new entry as if sent to it."""
    cancel: tuple[str, ...] = ()
    """Reported running jobs nobody waits for: send each a ``CancelJob``."""
    orphans: frozenset[str] = frozenset()
    """Reported running jobs that are not ours: each holds a slot until the worker reports it ended."""


def decide_rejoin(previous: PreviousEntry | None, hello: HelloReport, awaited: Set[str]) -> RejoinDecision:
    """Sort out the jobs of ``previous`` and the jobs ``hello`` reports.

    ``awaited``: the reported job ids whose runs still wait for them (ids outside the report are ignored).
    """
    same_process = previous is not None and previous.pid == hello.pid
    kept, lost = _settle_previous(previous, hello, same_process=same_process)
    still_orphaned = _still_orphaned(previous, hello, same_process=same_process)
    unclaimed = hello.reported_ids - set(kept) - still_orphaned
    adopted = unclaimed & awaited
    cancel = (unclaimed - adopted) & hello.running_ids  # a finished job needs no cancel, and holds no slot
    return RejoinDecision(
        jobs_sent=_jobs_sent(previous, hello, same_process=same_process),
        kept=kept,
        lost=lost,
        adopted=tuple(sorted(adopted)),
        cancel=tuple(sorted(cancel)),
        orphans=frozenset(still_orphaned | cancel),
    )


def _settle_previous(
    previous: PreviousEntry | None, hello: HelloReport, *, same_process: bool
) -> tuple[tuple[str, ...], tuple[LostJob, ...]]:
    """Which of the previous entry's jobs the worker still has (kept), and which it never will (lost)."""
    if previous is None:
        return (), ()
    reported = hello.reported_ids
    kept: list[str] = []
    lost: list[LostJob] = []
    for job_id, seq in sorted(previous.sent.items()):
        on_the_wire = same_process and seq > hello.jobs_received
        if job_id in reported or on_the_wire:
            kept.append(job_id)
        else:
            lost.append(LostJob(job_id, DROPPED if same_process else RESTARTED))
    return tuple(kept), tuple(lost)


def _still_orphaned(previous: PreviousEntry | None, hello: HelloReport, *, same_process: bool) -> frozenset[str]:
    """Orphans the same process still runs: told to stop already, so neither adopted nor cancelled again.

    A new process never had the old one's orphans (what it reports is cancelled afresh).
    """
    if previous is None or not same_process:
        return frozenset()
    return hello.running_ids & previous.orphans


def _jobs_sent(previous: PreviousEntry | None, hello: HelloReport, *, same_process: bool) -> int:
    """Count on from the same process's entry; a new process (or a new coordinator) counts from the worker's number.

    Never below the worker's own count: a job numbered at or below what the process has already
    received would be declared lost by the next Hello that crossed it on the wire.
    """
    received = max(0, hello.jobs_received)
    if previous is not None and same_process:
        return max(previous.jobs_sent, received)
    return received
