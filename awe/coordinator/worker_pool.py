"""Bookkeeping of connected workers: who they are, what they run, when we last heard from them.

Pure data and arithmetic; the :mod:`~awe.coordinator.dispatcher` does the I/O.
Liveness follows the Paranoid Pirate pattern: any message from a worker
counts as a sign of life, and a worker silent for ``interval * liveness``
seconds is declared lost.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from awe.coordinator.plan import JobSpec
from awe.store import utcnow


@dataclass
class Assignment:
    job: JobSpec
    started_at: str
    seq: int = 0
    """This job's number among the jobs sent to the worker process (0: the worker reported it)."""
    is_async: bool = False
    """The node is a coroutine: it holds one of the worker's async slots, not a thread."""


class RunningJobs(dict[str, Assignment]):
    """The jobs a worker runs for us, keeping count of the async ones so slot arithmetic stays O(1)
    (a worker may hold thousands of waiting async jobs)."""

    def __init__(self) -> None:
        super().__init__()
        self.async_count = 0

    def __setitem__(self, job_id: str, assignment: Assignment) -> None:
        if job_id in self:
            del self[job_id]
        super().__setitem__(job_id, assignment)
        self.async_count += assignment.is_async

    def __delitem__(self, job_id: str) -> None:
        self.async_count -= self[job_id].is_async
        super().__delitem__(job_id)

    def take(self, job_id: str) -> Assignment | None:
        """Remove and return the job's assignment (None if the worker was not running it for us)."""
        assignment = self.get(job_id)
        if assignment is not None:
            del self[job_id]
        return assignment


@dataclass(frozen=True)
class Needs:
    """What a worker must have to run a job: a Python graph's code (the same topology), or, for a
    node of a JSON graph, that node's tool (the graph's definition it learns from the coordinator)."""

    graph_id: str
    fingerprint: str | None = None
    tool: str | None = None
    is_async: bool = False
    """The node holds no thread (a coroutine, or an inline sync node), so it takes an async slot
    (cheap, many) rather than one of the worker's threads."""

    def describe(self) -> str:
        return f"the tool {self.tool!r}" if self.tool is not None else f"the Python graph {self.graph_id!r}"


@dataclass
class WorkerInfo:
    worker_id: str
    identity: bytes
    pid: int
    host: str
    capacity: int
    graphs: dict[str, str]
    tools: frozenset[str] = frozenset()
    connected_at: str = field(default_factory=utcnow)
    last_seen: float = field(default_factory=time.monotonic)
    last_heartbeat_at: str = field(default_factory=utcnow)
    running: RunningJobs = field(default_factory=RunningJobs)
    stuck: int = 0
    """Slots the worker reports as held by node threads that outlived their timeout."""
    orphans: set[str] = field(default_factory=set)
    """Jobs the worker reported running that are not ours (told to stop): each holds a slot until it ends."""
    jobs_done: int = 0
    jobs_sent: int = 0
    """Jobs sent to this worker process, counted from the worker's own count when it joined."""

    async_capacity: int = 0
    """Async jobs the worker runs at once; 0 (a worker from before the split): they share its threads' slots."""
    keeps_states: bool = False
    """It keeps each run's last state, so its jobs carry only what changed (see ``state_copies``)."""

    @property
    def free_slots(self) -> int:
        """Thread slots not held by our sync jobs, by orphans the worker still runs, or by stuck threads."""
        sync_running = len(self.running) - (self.running.async_count if self.async_capacity else 0)
        return self.capacity - self.stuck - sync_running - len(self.orphans)

    @property
    def free_async_slots(self) -> int:
        if not self.async_capacity:
            return self.free_slots
        return self.async_capacity - self.running.async_count

    def free_for(self, needs: Needs) -> int:
        return self.free_async_slots if needs.is_async else self.free_slots

    def orphan_ended(self, job_id: str) -> bool:
        """The worker reported the end of ``job_id``; True if that frees an orphan's slot."""
        if job_id not in self.orphans:
            return False
        self.orphans.discard(job_id)
        return True

    def bound_orphans(self, running_count: int) -> bool:
        """Forget orphans beyond the number of jobs the worker says it runs; True if any were forgotten.

        An orphan's result can be lost on the wire (a reconnect drops what was in the socket), and its
        slot would then never free. The count cannot say which orphans ended, only how many at most
        still run, and that bound is all the slot arithmetic needs: a later result for a forgotten id
        changes nothing, and one for a remembered id frees a slot that was really held.
        """
        excess = len(self.orphans) - max(0, running_count)
        if excess <= 0:
            return False
        self.orphans.difference_update(sorted(self.orphans)[:excess])
        return True

    def meets(self, needs: Needs) -> bool:
        if needs.tool is not None:
            return needs.tool in self.tools
        return self.graphs.get(needs.graph_id) == needs.fingerprint

    def describe(self) -> dict[str, Any]:
        return {
            "worker_id": self.worker_id,
            "pid": self.pid,
            "host": self.host,
            "capacity": self.capacity,
            "async_capacity": self.async_capacity,
            "in_flight": len(self.running),
            "orphans": len(self.orphans),
            "stuck_slots": self.stuck,
            "jobs_done": self.jobs_done,
            "graphs": sorted(self.graphs),
            "connected_at": self.connected_at,
            "last_heartbeat": self.last_heartbeat_at,
        }


class WorkerPool:
    def __init__(self, *, heartbeat_interval: float, liveness: int) -> None:
        self.heartbeat_interval = heartbeat_interval
        self.liveness = liveness
        self._workers: dict[bytes, WorkerInfo] = {}

    def __len__(self) -> int:
        return len(self._workers)

    def __iter__(self) -> Iterator[WorkerInfo]:
        """A snapshot: the loop body may add or remove workers."""
        return iter(list(self._workers.values()))

    def get(self, identity: bytes) -> WorkerInfo | None:
        return self._workers.get(identity)

    def add(self, worker: WorkerInfo) -> WorkerInfo | None:
        """Register a worker; returns the entry it replaces (same identity), if any."""
        previous = self._workers.get(worker.identity)
        self._workers[worker.identity] = worker
        return previous

    def remove(self, identity: bytes) -> WorkerInfo | None:
        return self._workers.pop(identity, None)

    def seen(self, worker: WorkerInfo) -> None:
        worker.last_seen = time.monotonic()

    def expired(self, now: float | None = None) -> list[WorkerInfo]:
        """Workers silent for longer than ``interval * liveness``."""
        deadline = (now if now is not None else time.monotonic()) - self.heartbeat_interval * self.liveness
        return [w for w in self._workers.values() if w.last_seen < deadline]

    def pick(self, needs: Needs) -> WorkerInfo | None:
        """The least loaded worker that can run the job and has a free slot."""
        best: WorkerInfo | None = None
        for worker in self._workers.values():
            fits = worker.free_for(needs) > 0 and worker.meets(needs)
            if fits and (best is None or worker.free_for(needs) > best.free_for(needs)):
                best = worker
        return best

    def anyone_meets(self, needs: Needs) -> bool:
        """Whether some connected worker, busy or not, could run the job."""
        return any(worker.meets(needs) for worker in self._workers.values())

    @property
    def free_slots(self) -> int:
        return sum(max(w.free_slots, 0) for w in self._workers.values())

    @property
    def free_async_slots(self) -> int:
        return sum(max(w.free_async_slots, 0) for w in self._workers.values() if w.async_capacity)
