"""The rejoin arithmetic and the slot accounting, driven case by case with no sockets and no processes.

``decide_rejoin`` is pure; the dispatcher tests at the end run ``on_hello`` and friends against a
recording endpoint, to check the decision is carried out (and counted in the slots) before any send.
"""

from __future__ import annotations

from collections.abc import Set
from typing import Any

import pytest

from awe.coordinator.dispatcher import Dispatcher
from awe.coordinator.plan import JobInput, JobSpec
from awe.coordinator.rejoin import (
    DROPPED,
    RESTARTED,
    HelloReport,
    LostJob,
    PreviousEntry,
    RejoinDecision,
    decide_rejoin,
)
from awe.coordinator.worker_pool import Assignment, Needs, WorkerInfo, WorkerPool
from awe.transport.messages import CancelJob, Heartbeat, Hello, Welcome

PID, OTHER_PID = 100, 200


def entry(sent: dict[str, int] | None = None, *, jobs_sent: int = 0, orphans=(), pid: int = PID) -> PreviousEntry:
    return PreviousEntry(pid=pid, jobs_sent=jobs_sent, sent=sent or {}, orphans=frozenset(orphans))


def hello(running=(), *, jobs_received: int = 0, finished=(), pid: int = PID) -> HelloReport:
    return HelloReport(pid=pid, running=tuple(running), jobs_received=jobs_received, finished=tuple(finished))


# -- a brand-new coordinator: no previous entry ----------------------------------------


def test_a_new_coordinator_adopts_what_it_waits_for_and_cancels_the_rest():
    decision = decide_rejoin(None, hello(["held", "ghost"], jobs_received=7), awaited={"held"})
    assert decision == RejoinDecision(jobs_sent=7, adopted=("held",), cancel=("ghost",), orphans=frozenset({"ghost"}))


def test_a_new_coordinator_counts_every_unwanted_running_job_as_an_orphan():
    """The defect: these held the worker's slots while the coordinator counted them free."""
    decision = decide_rejoin(None, hello(["g1", "g2", "g3"], jobs_received=3), awaited=set())
    assert decision.cancel == ("g1", "g2", "g3")
    assert decision.orphans == {"g1", "g2", "g3"}
    assert decision.adopted == () and decision.kept == () and decision.lost == ()


def test_a_new_coordinator_adopts_a_result_sent_before_the_hello():
    decision = decide_rejoin(None, hello(finished=["done"]), awaited={"done"})
    assert decision.adopted == ("done",)
    assert decision.cancel == () and decision.orphans == frozenset()


def test_a_result_nobody_waits_for_is_neither_cancelled_nor_an_orphan():
    """It has ended: it holds no slot, and its result will be dropped as stale."""
    decision = decide_rejoin(None, hello(finished=["stale"]), awaited=set())
    assert decision == RejoinDecision(jobs_sent=0)


def test_awaited_ids_the_worker_did_not_report_are_ignored():
    decision = decide_rejoin(None, hello(["a"]), awaited={"a", "elsewhere"})
    assert decision.adopted == ("a",)


def test_a_negative_jobs_received_counts_as_zero():
    assert decide_rejoin(None, hello(jobs_received=-5), awaited=set()).jobs_sent == 0


# -- the same process says Hello again (a Rejoin, or it lost us for a while) -------------


def test_the_same_process_keeps_reported_jobs_and_jobs_still_on_the_wire():
    previous = entry({"a": 1, "b": 2, "c": 3}, jobs_sent=3)
    decision = decide_rejoin(previous, hello(["a"], jobs_received=1), awaited=set())
    assert decision == RejoinDecision(jobs_sent=3, kept=("a", "b", "c"))


def test_a_burst_of_hellos_keeps_a_job_that_crossed_them_on_the_wire():
    """The first Hello was said before the job arrived, the second after: neither loses it."""
    previous = entry({"a": 1}, jobs_sent=1)
    first = decide_rejoin(previous, hello([], jobs_received=0), awaited=set())
    assert first.kept == ("a",) and first.lost == ()
    second = decide_rejoin(entry({"a": 1}, jobs_sent=first.jobs_sent), hello(["a"], jobs_received=1), set())
    assert second.kept == ("a",) and second.lost == () and second.jobs_sent == 1


def test_a_job_the_same_process_received_and_no_longer_runs_is_lost():
    previous = entry({"a": 1, "b": 2}, jobs_sent=2)
    decision = decide_rejoin(previous, hello(["b"], jobs_received=2), awaited=set())
    assert decision.kept == ("b",)
    assert decision.lost == (LostJob("a", DROPPED),)


def test_a_job_sent_after_jobs_received_is_kept_and_the_one_at_it_is_lost():
    previous = entry({"at": 4, "after": 5}, jobs_sent=5)
    decision = decide_rejoin(previous, hello([], jobs_received=4), awaited=set())
    assert decision.kept == ("after",)
    assert decision.lost == (LostJob("at", DROPPED),)


def test_an_adopted_job_the_same_process_no_longer_reports_is_lost():
    """An adopted job has number 0: it was never on the wire from us."""
    decision = decide_rejoin(entry({"adopted": 0}), hello([], jobs_received=0), awaited=set())
    assert decision.lost == (LostJob("adopted", DROPPED),)


def test_a_previous_job_whose_result_came_before_the_hello_is_kept():
    decision = decide_rejoin(entry({"a": 1}, jobs_sent=1), hello(finished=["a"], jobs_received=1), set())
    assert decision.kept == ("a",)
    assert decision.adopted == () and decision.orphans == frozenset()


def test_a_kept_job_is_not_adopted_again_even_if_it_also_waits_in_line():
    decision = decide_rejoin(entry({"a": 1}, jobs_sent=1), hello(["a"], jobs_received=1), awaited={"a"})
    assert decision.kept == ("a",) and decision.adopted == ()


def test_the_same_process_counts_on_and_never_below_what_it_received():
    assert decide_rejoin(entry(jobs_sent=9), hello(jobs_received=4), set()).jobs_sent == 9
    assert decide_rejoin(entry(jobs_sent=2), hello(jobs_received=4), set()).jobs_sent == 4


def test_an_orphan_the_same_process_still_runs_stays_an_orphan_without_a_second_cancel():
    previous = entry(orphans={"ghost"})
    decision = decide_rejoin(previous, hello(["ghost"]), awaited=set())
    assert decision.cancel == ()
    assert decision.orphans == {"ghost"}


def test_an_orphan_is_not_adopted_even_if_a_run_now_waits_for_it():
    """It has been told to stop: its answer will be a cancellation, not the node's result."""
    decision = decide_rejoin(entry(orphans={"ghost"}), hello(["ghost"]), awaited={"ghost"})
    assert decision.adopted == () and decision.orphans == {"ghost"}


def test_an_orphan_the_worker_no_longer_reports_frees_its_slot():
    decision = decide_rejoin(entry(orphans={"ended", "still"}), hello(["still"]), awaited=set())
    assert decision.orphans == {"still"}


# -- a restarted process: same identity, new pid -----------------------------------------


def test_a_restarted_process_loses_every_job_even_those_on_the_wire():
    previous = entry({"a": 1, "b": 5}, jobs_sent=5)
    decision = decide_rejoin(previous, hello([], jobs_received=0, pid=OTHER_PID), awaited=set())
    assert decision.kept == ()
    assert decision.lost == (LostJob("a", RESTARTED), LostJob("b", RESTARTED))
    assert decision.jobs_sent == 0


def test_a_restarted_process_does_not_inherit_the_old_orphans():
    previous = entry(orphans={"ghost"})
    decision = decide_rejoin(previous, hello(["ghost"], pid=OTHER_PID), awaited=set())
    assert decision.cancel == ("ghost",) and decision.orphans == {"ghost"}


# -- duplicates ------------------------------------------------------------------------------


def test_a_job_listed_twice_is_cancelled_once_and_holds_one_slot():
    decision = decide_rejoin(None, hello(["x", "x"]), awaited=set())
    assert decision.cancel == ("x",) and decision.orphans == {"x"}


def test_a_job_both_running_and_finished_counts_as_finished():
    """Its result went out before the Hello: it no longer holds a slot and needs no cancel."""
    unwanted = decide_rejoin(None, hello(["x"], finished=["x"]), awaited=set())
    assert unwanted.cancel == () and unwanted.orphans == frozenset()
    wanted = decide_rejoin(None, hello(["x"], finished=["x", "x"]), awaited={"x"})
    assert wanted.adopted == ("x",)


def test_the_outcome_is_sorted_whatever_the_order_of_the_report():
    decision = decide_rejoin(None, hello(["c", "a", "b"]), awaited=set())
    assert decision.cancel == ("a", "b", "c")


# -- the slot arithmetic ---------------------------------------------------------------------


def worker(*, capacity: int = 2, running=(), orphans=(), stuck: int = 0, identity: bytes = b"w") -> WorkerInfo:
    info = WorkerInfo(
        worker_id=identity.decode(), identity=identity, pid=PID, host="h", capacity=capacity, graphs={"g": "fp"}
    )
    for job_id in running:
        info.running[job_id] = Assignment(JobSpec("r", "g", job_id, 1, 1), "t0", seq=1)
    info.orphans = set(orphans)
    info.stuck = stuck
    return info


def test_orphans_hold_slots_like_jobs_and_stuck_threads():
    assert worker(capacity=4, running=["a"], orphans=["o"], stuck=1).free_slots == 1
    assert worker(capacity=2, orphans=["o1", "o2"]).free_slots == 0


def test_an_orphan_ends_once():
    info = worker(orphans=["o"])
    assert info.orphan_ended("o") is True
    assert info.orphan_ended("o") is False
    assert info.orphan_ended("never-heard-of") is False
    assert info.free_slots == 2


@pytest.mark.parametrize(
    ("running_count", "left"),
    [(3, 2), (2, 2), (1, 1), (0, 0), (-1, 0)],
)
def test_the_worker_count_bounds_the_orphans_from_above(running_count: int, left: int):
    info = worker(capacity=3, orphans=["o1", "o2"])
    assert info.bound_orphans(running_count) is (left < 2)
    assert len(info.orphans) == left


def test_the_pool_picks_no_worker_whose_slots_orphans_hold():
    pool = WorkerPool(heartbeat_interval=1.0, liveness=3)
    pool.add(worker(identity=b"busy", orphans=["o1", "o2"]))
    assert pool.free_slots == 0
    assert pool.pick(Needs("g", fingerprint="fp")) is None
    pool.add(worker(identity=b"over", running=["a"], orphans=["o1", "o2"]))  # over-filled: counts 0, not -1
    assert pool.free_slots == 0
    pool.add(worker(identity=b"free", capacity=2, orphans=["o1"]))
    picked = pool.pick(Needs("g", fingerprint="fp"))
    assert picked is not None and picked.identity == b"free"


# -- the dispatcher carries the decision out --------------------------------------------------


class RecordingEndpoint:
    """Records what is sent, and how many free slots the pool showed at each send."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool
        self.sent: list[tuple[Any, int]] = []

    async def send(self, identity: bytes, message: Any) -> None:
        self.sent.append((message, self.pool.free_slots))


class RecordingOwner:
    def __init__(self, wanted: set[str]) -> None:
        self.wanted = wanted
        self.sent: list[str] = []
        self.lost: list[tuple[str, str]] = []
        self.joined: list[str] = []
        self.left: list[str] = []

    def job_input(self, job: JobSpec) -> JobInput | None:
        return JobInput({}) if job.job_id in self.wanted else None

    def job_sent(self, job: JobSpec, worker: WorkerInfo) -> None:
        self.sent.append(job.job_id)

    def job_lost(self, job: JobSpec, worker: WorkerInfo, reason: str, started_at: str) -> None:
        self.lost.append((job.job_id, reason))

    def job_unsendable(self, job: JobSpec, error: BaseException) -> None:
        raise AssertionError("nothing is sent here")

    def job_needs(self, job: JobSpec) -> Needs | None:
        return Needs(job.graph_id, fingerprint="fp")

    def job_waiting(self, job: JobSpec, reason: str) -> None:
        raise AssertionError("no job waits here")

    def graphs_for_workers(self) -> list[dict[str, Any]]:
        return []

    async def worker_joined(self, worker_id: str) -> None:
        self.joined.append(worker_id)

    def workers_left(self, worker_ids: list[str]) -> None:
        self.left.extend(worker_ids)

    def running_job_input(self, job: JobSpec) -> JobInput | None:
        return self.job_input(job)


def dispatcher(wanted: Set[str] = frozenset()) -> tuple[Dispatcher, RecordingEndpoint, RecordingOwner]:
    pool = WorkerPool(heartbeat_interval=1.0, liveness=3)
    endpoint = RecordingEndpoint(pool)
    owner = RecordingOwner(set(wanted))
    return Dispatcher(endpoint, pool, owner, "coordinator-test"), endpoint, owner


def hello_message(running=(), *, capacity: int = 2, jobs_received: int = 0, pid: int = PID) -> Hello:
    return Hello(
        worker_id="w",
        pid=pid,
        host="h",
        capacity=capacity,
        graphs={"g": "fp"},
        running=list(running),
        jobs_received=jobs_received,
    )


async def test_reported_unwanted_jobs_hold_the_slots_from_before_the_first_send():
    disp, endpoint, _ = dispatcher()
    await disp.on_hello(b"w", hello_message(["g1", "g2"], capacity=2, jobs_received=2))
    kinds = [(type(message).__name__, free) for message, free in endpoint.sent]
    assert kinds == [("Welcome", 0), ("CancelJob", 0), ("CancelJob", 0)]
    assert [m.job_id for m, _ in endpoint.sent if isinstance(m, CancelJob)] == ["g1", "g2"]
    assert disp.pool.free_slots == 0


async def test_an_orphan_result_frees_its_slot_though_nobody_claims_it():
    disp, _, _ = dispatcher()
    await disp.on_hello(b"w", hello_message(["g1", "g2"], capacity=2))
    info = disp.pool.get(b"w")
    assert info is not None
    disp._wakeup.clear()
    assert disp.finish(info, "g1") is None  # a stale result for the caller
    assert info.free_slots == 1 and disp._wakeup.is_set()
    disp.on_heartbeat(info, Heartbeat(sender="w", running=0))
    assert info.free_slots == 2


async def test_a_heartbeat_that_still_counts_the_orphans_keeps_their_slots():
    disp, _, _ = dispatcher()
    await disp.on_hello(b"w", hello_message(["g1", "g2"], capacity=2))
    info = disp.pool.get(b"w")
    assert info is not None
    disp.on_heartbeat(info, Heartbeat(sender="w", running=2))
    assert info.free_slots == 0


async def test_a_held_job_the_worker_reports_is_adopted_not_cancelled():
    job = JobSpec("run", "g", "node", 1, 1)
    disp, endpoint, owner = dispatcher(wanted={job.job_id})
    disp.held[job.job_id] = job
    await disp.on_hello(b"w", hello_message([job.job_id, "ghost"], capacity=2))
    info = disp.pool.get(b"w")
    assert info is not None
    assert list(info.running) == [job.job_id] and info.running[job.job_id].seq == 0
    assert info.orphans == {"ghost"} and info.free_slots == 0
    assert job.job_id not in disp.held
    assert owner.sent == [job.job_id]
    assert [m.job_id for m, _ in endpoint.sent if isinstance(m, CancelJob)] == ["ghost"]


async def test_a_second_hello_carries_kept_jobs_over_and_reports_the_rest_lost():
    disp, endpoint, owner = dispatcher()
    await disp.on_hello(b"w", hello_message(capacity=3))
    first = disp.pool.get(b"w")
    assert first is not None
    kept = Assignment(JobSpec("r", "g", "kept", 1, 1), "t0", seq=1)
    dropped = Assignment(JobSpec("r", "g", "dropped", 1, 1), "t0", seq=2)
    on_the_wire = Assignment(JobSpec("r", "g", "wire", 1, 1), "t0", seq=3)
    for assignment in (kept, dropped, on_the_wire):
        first.running[assignment.job.job_id] = assignment
    first.jobs_sent = 3
    await disp.on_hello(b"w", hello_message([kept.job.job_id], capacity=3, jobs_received=2))
    second = disp.pool.get(b"w")
    assert second is not None and second is not first
    assert second.running == {kept.job.job_id: kept, on_the_wire.job.job_id: on_the_wire}
    assert second.jobs_sent == 3
    assert owner.lost == [(dropped.job.job_id, DROPPED)]
    assert not any(isinstance(m, CancelJob) for m, _ in endpoint.sent)
    assert isinstance(endpoint.sent[-1][0], Welcome)
