"""The last whole state of each run a worker was sent, so that a job can carry only what changed.

The coordinator's side is :mod:`awe.coordinator.state_copies`. Copies are kept
within a byte budget, least recently used first out (the newest stays even when
it alone is larger); a job whose ``base`` names
a copy that is not here (evicted, or this process is new) is answered with
``StateMissing``, and the coordinator sends it again with the whole state.

A copy's size is reckoned from the frames that built it (the whole state's
frame, plus each later delta's), which overstates it a little: it only makes a
copy leave earlier.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from awe.transport.messages import Job


@dataclass
class _Kept:
    version: int
    state: dict[str, Any]
    size: int


class StateCache:
    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._kept: OrderedDict[str, _Kept] = OrderedDict()
        self._bytes = 0

    @property
    def keeps_states(self) -> bool:
        return self.budget_bytes > 0

    def __contains__(self, run_id: object) -> bool:
        """Whether a copy of the run's state is kept here."""
        return run_id in self._kept

    def whole(self, job: Job, frame_bytes: int) -> Job | None:
        """``job`` with its whole state (kept for the run's next job), or None if its base is not here.

        A job that carried only what changed is completed in place: it is a message just decoded,
        which nothing else holds.

        The state handed out is never changed afterwards: the node works on a copy of it.
        """
        if job.base == 0:
            state, size = job.state, frame_bytes
        else:
            kept = self._kept.get(job.run_id)
            if kept is None or kept.version != job.base:
                return None
            state = {**kept.state, **job.state}
            for key in job.removed:
                state.pop(key, None)
            size = kept.size + frame_bytes
            job.state, job.base, job.removed = state, 0, []  # the job was just decoded: this is its only reference
        if job.version and self.keeps_states:
            self._keep(job.run_id, _Kept(job.version, state, size))
        return job

    def drop(self, run_ids: list[str]) -> None:
        """Let go of the copies of runs that ended (the coordinator says so with a later job)."""
        for run_id in run_ids:
            kept = self._kept.pop(run_id, None)
            if kept is not None:
                self._bytes -= kept.size

    def _keep(self, run_id: str, kept: _Kept) -> None:
        old = self._kept.pop(run_id, None)
        if old is not None:
            self._bytes -= old.size
        self._kept[run_id] = kept
        self._bytes += kept.size
        while self._bytes > self.budget_bytes and len(self._kept) > 1:  # the newest stays, whatever its size
            _, evicted = self._kept.popitem(last=False)
            self._bytes -= evicted.size
