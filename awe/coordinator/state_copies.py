"""Which copy of each run's state each worker keeps, so that a job carries only what changed since.

A run's state goes to a worker with every job. Most steps change a key or two
of it, and a run's jobs often go back to a worker that ran the previous one,
so a worker that keeps copies (it says so in its ``Hello``) is sent the whole
state once and then only the top-level keys that changed since the copy it was
last sent. A 1 MB value that no node changes crosses the wire once per worker,
not once per step.

Change is found by identity, as the store finds what to write
(:func:`awe.graph.reducers.changed_keys`): at worst a key goes that did not
need to.

A run that ends is remembered for each worker that keeps a copy of it, and the
worker is told with its next job (``Job.ended``), so that copies of finished runs
do not sit in a worker's budget until it evicts them.

Nothing here is durable. A worker that lacks the base copy a job names (it
restarted, or evicted the copy) answers ``StateMissing`` and is sent the job
again with the whole state; a coordinator that restarts starts with no copies,
and its versions cannot be confused with its predecessor's (they start at a
random number).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from awe.graph.reducers import changed_keys


@dataclass(frozen=True)
class StateToSend:
    """A job's ``state`` field and how the worker rebuilds the whole state from it."""

    state: dict[str, Any]
    """The whole state (``base == 0``), or the keys changed since copy ``base``."""
    base: int = 0
    removed: list[str] = field(default_factory=list)
    """Keys the base copy has and the state no longer has."""
    version: int = 0
    """The name of the copy the worker keeps after this job (0: keep none)."""


ENDED_PER_WORKER = 10_000
"""Ended runs remembered per worker until its next job; past that, its budget evicts their copies in time."""


@dataclass
class _Copy:
    version: int
    state: dict[str, Any]


class StateCopies:
    def __init__(self) -> None:
        self._copies: dict[str, dict[bytes, _Copy]] = {}
        """run id -> worker identity -> the copy the worker was last sent."""
        self._ended: dict[bytes, list[str]] = {}
        """worker identity -> runs that ended whose copies it keeps, to tell it with its next job."""
        self._next_version = secrets.randbits(48) + 1

    def to_send(self, run_id: str, worker: bytes, state: dict[str, Any]) -> StateToSend:
        """What to send ``worker`` for a job on ``state``; from now on it is assumed to keep this copy."""
        version, self._next_version = self._next_version, self._next_version + 1
        copies = self._copies.setdefault(run_id, {})
        copy = copies.get(worker)
        copies[worker] = _Copy(version, state)
        if copy is None:
            return StateToSend(state, version=version)
        changed, removed = changed_keys(copy.state, state)
        return StateToSend(changed, base=copy.version, removed=removed, version=version)

    def rank(self, run_id: str, worker: bytes) -> int:
        """How much of the run's state a job of it sends ``worker``: 0, what changed (it keeps a copy);
        1, the whole state, as it would to any worker (none keeps one); 2, the whole state again
        (another worker keeps a copy, and would have needed only the change)."""
        copies = self._copies.get(run_id)
        if not copies:
            return 1
        return 0 if worker in copies else 2

    def forget(self, run_id: str, worker: bytes) -> None:
        """The worker does not have the copy it was sent (it said ``StateMissing``)."""
        copies = self._copies.get(run_id)
        if copies is not None:
            copies.pop(worker, None)

    def forget_run(self, run_id: str) -> None:
        """The run ended: no job of it will be sent again, and the workers keeping its copies are told."""
        for worker in self._copies.pop(run_id, None) or ():
            ended = self._ended.setdefault(worker, [])
            if len(ended) < ENDED_PER_WORKER:
                ended.append(run_id)

    def take_ended(self, worker: bytes) -> list[str]:
        """The ended runs whose copies ``worker`` keeps, for the job about to be sent to it; told once.

        A job whose frame is then not sent loses them: the worker's own budget evicts those copies later.
        """
        return self._ended.pop(worker, [])

    def forget_worker(self, worker: bytes) -> None:
        """The worker left or said Hello again (perhaps a new process): assume it keeps nothing."""
        for copies in self._copies.values():
            copies.pop(worker, None)
        self._ended.pop(worker, None)
