"""The run state machine, driven fact by fact with no I/O."""

from __future__ import annotations

import pytest

from awe.coordinator.events import RunEvent
from awe.coordinator.plan import JobInput
from awe.coordinator.run_machine import (
    FINISHED,
    MAX_LOST_IN_A_ROW,
    RESUME,
    TRANSITIONS,
    IllegalTransition,
    Instructions,
    JobSpec,
    NotPaused,
    Run,
    RunStatus,
)
from awe.graph import END, CompiledGraph, Graph, RetryPolicy, Send
from awe.store import EventRecord, RunRecord, StepRecord

T0, T1, T2, T3, T4, T5, T6 = (f"2024-01-01T00:00:0{i}.000000Z" for i in range(7))


def node(state):  # never called: the machine only needs the topology
    raise AssertionError("the run machine must not call nodes")


def gate(state):
    raise AssertionError("the run machine must not call routers")


def linear_graph() -> CompiledGraph:
    """a -> b -> END"""
    g = Graph("linear").add_node("a", node).add_node("b", node)
    g.add_edge("a", "b").add_edge("b", END).set_entry_point("a")
    return g.compile()


def routed_graph() -> CompiledGraph:
    """a --gate--> {again: a, done: END}"""
    g = Graph("routed").add_node("a", node)
    g.add_conditional_edge("a", gate, {"again": "a", "done": END}).set_entry_point("a")
    return g.compile()


def new_run(graph: CompiledGraph | None = None, state: dict | None = None) -> tuple[Run, Instructions]:
    return Run.create(
        run_id="run-1",
        graph=graph or linear_graph(),
        graph_version=3,
        state=state if state is not None else {"x": 1},
        options={"opt": True},
        now=T0,
    )


def events(out: Instructions) -> list[EventRecord]:
    return [r for r in out.records if isinstance(r, EventRecord)]


def event_names(out: Instructions) -> list[str]:
    return [e.event for e in events(out)]


def snapshots(out: Instructions) -> list[RunRecord]:
    return [r for r in out.records if isinstance(r, RunRecord)]


def steps(out: Instructions) -> list[StepRecord]:
    return [r for r in out.records if isinstance(r, StepRecord)]


def only(jobs: list[JobSpec]) -> JobSpec:
    (job,) = jobs
    return job


def done(run: Run, job: JobSpec, *, delta=None, removed=None, route=None, now=T2) -> Instructions:
    return run.job_done(
        job,
        worker_id="w1",
        delta=delta or {},
        removed=removed or [],
        route=route,
        started_at=T1,
        now=now,
        duration_ms=5.0,
    )


# -- create ------------------------------------------------------------------------


def test_create_queues_the_run_at_the_entry_point():
    run, out = new_run()
    assert run.status is RunStatus.QUEUED
    assert not run.is_finished
    assert out.dispatch == []
    assert out.finished is False
    assert event_names(out) == [RunEvent.RUN_QUEUED.value]
    (queued,) = events(out)
    assert queued.seq == 1
    assert queued.run_id == "run-1"
    assert queued.fields == {"graph_id": "linear"}
    (snap,) = snapshots(out)
    assert snap.status == "queued"
    assert snap.graph_id == "linear"
    assert snap.graph_version == 3
    assert snap.state == {"x": 1}
    assert snap.step_count == 0
    assert snap.current_node == "a"
    assert snap.plan == {"tasks": [{"branch": "a", "node": "a", "attempt": 1}], "joins": {}}
    assert snap.options == {"opt": True}
    assert snap.created_at == T0
    assert snap.started_at is None and snap.finished_at is None
    assert only(run.next_jobs()) == JobSpec("run-1", "linear", "a", 1, 1)


def test_job_spec_job_id():
    assert JobSpec("r", "g", "n", 4, 2).job_id == "r:4:n:2"


# -- a whole run ----------------------------------------------------------------------


def test_linear_run_from_queued_to_completed():
    run, created = new_run()
    all_events = events(created)

    job1 = only(run.next_jobs())
    sent = run.job_sent(job1, "w1", T1)
    assert run.status is RunStatus.RUNNING
    assert event_names(sent) == ["run_started", "node_started"]
    assert sent.dispatch == [] and not sent.finished
    assert sent.may_wait and not created.may_wait  # a report rides with the next commit; the run's creation does not
    assert events(sent)[1].fields == {"step": 1, "attempt": 1}
    assert events(sent)[1].node == "a" and events(sent)[1].worker == "w1"
    (snap,) = snapshots(sent)
    assert snap.status == "running" and snap.started_at == T1
    assert run.in_flight == {"a": job1}
    all_events += events(sent)

    out = done(run, job1, delta={"y": 2}, now=T2)
    assert [type(r) for r in out.records] == [StepRecord, EventRecord, EventRecord, RunRecord]
    (step,) = steps(out)
    assert (step.step, step.node, step.attempt, step.status) == (1, "a", 1, "completed")
    assert step.worker_id == "w1" and step.started_at == T1 and step.finished_at == T2
    assert step.delta == {"y": 2} and step.duration_ms == 5.0
    assert event_names(out) == ["node_completed", "step_completed"]
    assert events(out)[0].fields["updated_keys"] == ["y"]
    assert events(out)[1].fields == {"step": 1, "branches": ["a"], "next": ["b"]}
    assert out.dispatch == [JobSpec("run-1", "linear", "b", 2, 1)]
    assert out.finished is False and not out.may_wait  # its dispatch waits for this commit
    assert run.in_flight == {}
    assert snapshots(out)[0].state == {"x": 1, "y": 2}
    assert snapshots(out)[0].plan["tasks"] == [{"branch": "b", "node": "b", "attempt": 1}]
    assert snapshots(out)[0].step_count == 1
    all_events += events(out)

    (job2,) = out.dispatch
    sent2 = run.job_sent(job2, "w2", T3)
    assert event_names(sent2) == ["node_started"]  # no second run_started
    all_events += events(sent2)

    final = done(run, job2, delta={"z": 3}, now=T4)
    assert event_names(final) == ["node_completed", "step_completed", "run_completed"]
    assert final.finished is True
    assert final.dispatch == []
    assert run.status is RunStatus.COMPLETED
    assert run.is_finished
    assert run.next_jobs() == []
    snap = snapshots(final)[-1]
    assert snap.status == "completed"
    assert snap.plan == {"tasks": [], "joins": {}}
    assert snap.finished_at == T4
    assert snap.step_count == 2
    assert snap.state == {"x": 1, "y": 2, "z": 3}
    assert events(final)[-1].fields == {"steps": 2}
    all_events += events(final)

    assert [e.seq for e in all_events] == list(range(1, len(all_events) + 1))
    assert [e.event for e in all_events] == [
        "run_queued",
        "run_started",
        "node_started",
        "node_completed",
        "step_completed",
        "node_started",
        "node_completed",
        "step_completed",
        "run_completed",
    ]
    assert all(e.run_id == "run-1" for e in all_events)
    assert all(name in {ev.value for ev in RunEvent} for name in (e.event for e in all_events))


def test_router_answer_picks_the_next_node():
    run, _ = new_run(routed_graph())
    job = only(run.next_jobs())
    run.job_sent(job, "w1", T1)
    out = done(run, job, route="again")
    assert out.dispatch == [JobSpec("run-1", "routed", "a", 2, 1)]
    assert run.status is RunStatus.RUNNING
    (again,) = out.dispatch
    run.job_sent(again, "w1", T3)
    out = done(run, again, route="done", now=T4)
    assert out.finished
    assert run.status is RunStatus.COMPLETED
    assert run.step_count == 2


def test_unknown_router_key_fails_the_run_with_a_route_error():
    run, _ = new_run(routed_graph())
    job = only(run.next_jobs())
    run.job_sent(job, "w1", T1)
    out = done(run, job, delta={"y": 1}, route="sideways")
    assert out.finished is True
    assert out.dispatch == []
    assert event_names(out) == ["node_completed", "run_failed"]
    assert steps(out)[0].status == "completed"  # the node itself did its job
    assert run.status is RunStatus.FAILED
    assert run.error["type"] == "RouteError"
    assert run.error["node"] == "a"
    assert "'sideways'" in run.error["message"]
    snap = snapshots(out)[-1]
    assert snap.status == "failed" and snap.error == run.error and snap.plan["tasks"] == []
    assert snap.state == {"x": 1, "y": 1}
    assert events(out)[-1].fields["error_type"] == "RouteError"
    assert events(out)[-1].level == "error"


def test_job_failed_fails_the_run():
    run, _ = new_run()
    job = only(run.next_jobs())
    run.job_sent(job, "w1", T1)
    error = {"type": "ValueError", "message": "bad input", "traceback": "Traceback ..."}
    out = run.job_failed(job, worker_id="w1", error=error, started_at=T1, now=T2, duration_ms=1.5)
    assert [type(r) for r in out.records] == [StepRecord, EventRecord, EventRecord, RunRecord]
    (step,) = steps(out)
    assert step.status == "failed" and step.error == error and step.node == "a" and step.attempt == 1
    assert event_names(out) == ["node_failed", "run_failed"]
    node_failed, run_failed = events(out)
    assert node_failed.level == "error"
    assert node_failed.fields == {
        "step": 1,
        "attempt": 1,
        "error_type": "ValueError",
        "message": "bad input",
        "will_retry": False,
    }
    assert run_failed.node == "a"
    assert out.finished is True and out.dispatch == []
    assert run.status is RunStatus.FAILED
    assert run.error == {
        "node": "a",
        "type": "ValueError",
        "message": "bad input",
        "traceback": "Traceback ...",
        "attempts": 1,
    }
    snap = snapshots(out)[-1]
    assert snap.status == "failed"
    assert snap.error == run.error
    assert snap.finished_at == T2
    assert snap.plan["tasks"] == []
    assert run.next_jobs() == []
    assert [e.seq for e in events(out)] == [4, 5]


def test_job_failed_while_queued_is_allowed():
    run, _ = new_run()
    out = run.job_failed(
        only(run.next_jobs()),
        worker_id="w1",
        error={"type": "E", "message": "m"},
        started_at=T1,
        now=T2,
        duration_ms=0.0,
    )
    assert out.finished
    assert run.status is RunStatus.FAILED


def test_job_lost_redispatches_the_same_step_with_the_next_attempt():
    run, _ = new_run()
    job = only(run.next_jobs())
    run.job_sent(job, "w1", T1)
    out = run.job_lost(job, worker_id="w1", reason="heartbeat timeout", started_at=T1, now=T2)
    (step,) = steps(out)
    assert step.status == "lost"
    assert (step.step, step.node, step.attempt) == (1, "a", 1)
    assert step.error == {"type": "WorkerLost", "message": "heartbeat timeout"}
    assert event_names(out) == ["node_lost"]
    assert events(out)[0].level == "warning"
    assert events(out)[0].fields["reason"] == "heartbeat timeout"
    assert out.dispatch == [JobSpec("run-1", "linear", "a", 1, 2)]
    assert out.finished is False
    assert run.status is RunStatus.RUNNING
    assert snapshots(out)[0].step_count == 0

    (retry,) = out.dispatch
    sent = run.job_sent(retry, "w2", T3)
    assert events(sent)[0].fields == {"step": 1, "attempt": 2}
    again = run.job_lost(retry, worker_id="w2", reason="gone", started_at=T3, now=T4)
    assert again.dispatch == [JobSpec("run-1", "linear", "a", 1, 3)]

    (third,) = again.dispatch
    run.job_sent(third, "w3", T5)
    out = done(run, third, now=T6)
    assert steps(out)[0].attempt == 3
    # the attempt counter starts over for the next node
    assert out.dispatch == [JobSpec("run-1", "linear", "b", 2, 1)]


def test_state_is_replaced_not_mutated():
    initial = {"keep": 1, "change": "old", "drop": [1]}
    run, created = new_run(state=initial)
    job = only(run.next_jobs())
    before = run.job_sent(job, "w1", T1)
    old_snapshot = snapshots(before)[0]
    old_state = run.state

    out = done(run, job, delta={"change": "new", "added": True}, removed=["drop"])

    assert old_snapshot.state == {"keep": 1, "change": "old", "drop": [1]}
    assert snapshots(created)[0].state == {"keep": 1, "change": "old", "drop": [1]}
    assert initial == {"keep": 1, "change": "old", "drop": [1]}
    assert run.state is not old_state
    assert run.state == {"keep": 1, "change": "new", "added": True}
    assert "drop" not in snapshots(out)[0].state
    assert steps(out)[0].removed == ["drop"]
    assert events(out)[0].fields["removed_keys"] == ["drop"]
    assert events(out)[0].fields["updated_keys"] == ["added", "change"]


def test_removed_and_redelivered_key_keeps_the_delta_value():
    run, _ = new_run(state={"k": 1})
    job = only(run.next_jobs())
    run.job_sent(job, "w1", T1)
    done(run, job, delta={"k": 2}, removed=["k"])
    assert run.state == {"k": 2}


def test_node_log_is_an_event_only():
    run, _ = new_run()
    out = run.node_log(node="a", worker_id="w1", level="warning", event="hi", fields={"n": 1}, now=T1)
    assert [type(r) for r in out.records] == [EventRecord]
    (ev,) = out.records
    assert ev.event == "node_log" and ev.seq == 2 and ev.level == "warning"
    assert ev.fields == {"message": "hi", "n": 1}
    assert out.dispatch == [] and not out.finished


def test_restored_run_continues_the_event_sequence():
    _, created = new_run()
    record = snapshots(created)[0]
    restored = Run(graph=linear_graph(), graph_version=3, record=record, last_seq=41)
    out = restored.job_sent(only(restored.next_jobs()), "w1", T1)
    assert [e.seq for e in events(out)] == [42, 43]
    assert restored.status is RunStatus.RUNNING


# -- illegal transitions -------------------------------------------------------------


def test_job_done_after_completion_is_an_illegal_transition():
    run, _ = new_run(routed_graph())
    job = only(run.next_jobs())
    run.job_sent(job, "w1", T1)
    assert done(run, job, route="done").finished
    with pytest.raises(IllegalTransition, match="is completed: job_done is not allowed"):
        done(run, job, route="done", now=T3)
    assert run.status is RunStatus.COMPLETED


def test_job_failed_after_completion_is_an_illegal_transition():
    run, _ = new_run(routed_graph())
    job = only(run.next_jobs())
    run.job_sent(job, "w1", T1)
    done(run, job, route="done")
    with pytest.raises(IllegalTransition, match="is completed: job_failed is not allowed"):
        run.job_failed(job, worker_id="w1", error={"type": "E", "message": "m"}, started_at=T1, now=T3, duration_ms=0.0)
    assert run.status is RunStatus.COMPLETED


def test_job_done_after_failure_is_an_illegal_transition():
    run, _ = new_run()
    job = only(run.next_jobs())
    run.job_sent(job, "w1", T1)
    run.job_failed(job, worker_id="w1", error={"type": "E", "message": "m"}, started_at=T1, now=T2, duration_ms=0.0)
    run2_job = JobSpec("run-1", "linear", "b", 2, 1)
    with pytest.raises(IllegalTransition, match="is failed: job_done is not allowed"):
        done(run, run2_job, now=T3)
    assert run.status is RunStatus.FAILED


def test_transitions_table():
    assert set(TRANSITIONS) == set(RunStatus)
    for status in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED):
        assert TRANSITIONS[status] == frozenset()
    assert {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED} == FINISHED
    assert RunStatus.RUNNING in TRANSITIONS[RunStatus.QUEUED]
    assert RunStatus.COMPLETED not in TRANSITIONS[RunStatus.QUEUED]
    assert RunStatus.QUEUED not in TRANSITIONS[RunStatus.RUNNING]
    for status, targets in TRANSITIONS.items():
        assert status not in targets


def test_move_enforces_the_table():
    run, _ = new_run()
    with pytest.raises(IllegalTransition, match="queued -> completed"):
        run._move(RunStatus.COMPLETED, T1)
    assert run.status is RunStatus.QUEUED
    run._move(RunStatus.CANCELLED, T1)
    for status in RunStatus:
        with pytest.raises(IllegalTransition):
            run._move(status, T2)
    assert run.status is RunStatus.CANCELLED
    assert run.next_jobs() == []


def test_late_job_done_for_a_finished_run_is_rejected():
    run, _ = new_run()  # a -> b -> END
    job1 = only(run.next_jobs())
    run.job_sent(job1, "w1", T1)
    (job2,) = done(run, job1, delta={"y": 1}).dispatch
    run.job_sent(job2, "w1", T3)
    assert done(run, job2, now=T4).finished
    with pytest.raises(IllegalTransition):
        done(run, job1, delta={"y": "stale"}, now=T5)


# -- retries, cancel, step limit -------------------------------------------------------------


def retry_graph(policy: RetryPolicy) -> CompiledGraph:
    g = Graph("retry")
    g.add_node("a", lambda s: None, retry=policy)
    g.add_edge("a", END)
    return g.set_entry_point("a").compile()


def test_a_retryable_failure_redispatches_the_same_step_after_the_backoff():
    policy = RetryPolicy(max_attempts=3, backoff=0.25, factor=2.0, jitter=False)
    run, _ = new_run(retry_graph(policy))
    error = {"type": "ConnectionError", "message": "down"}
    for attempt, delay in ((1, 0.25), (2, 0.5)):
        job = only(run.next_jobs())
        assert job.attempt == attempt and job.step == 1
        run.job_sent(job, "w1", T1)
        out = run.job_failed(job, worker_id="w1", error=error, started_at=T1, now=T2, duration_ms=1.0, retryable=True)
        assert event_names(out) == ["node_failed", "node_retrying"]
        assert out.dispatch == [JobSpec("run-1", "retry", "a", 1, attempt + 1)]
        assert out.dispatch_delay == delay and not out.finished
        assert steps(out)[0].attempt == attempt and steps(out)[0].status == "failed"
        assert snapshots(out)[-1].plan["tasks"][0]["attempt"] == attempt + 1
    job = only(run.next_jobs())
    run.job_sent(job, "w1", T1)
    out = run.job_failed(job, worker_id="w1", error=error, started_at=T1, now=T2, duration_ms=1.0, retryable=True)
    assert out.finished and run.status is RunStatus.FAILED and run.error["attempts"] == 3
    assert event_names(out) == ["node_failed", "run_failed"]


def test_a_non_retryable_failure_fails_at_once_even_with_a_policy():
    run, _ = new_run(retry_graph(RetryPolicy(max_attempts=5)))
    job = only(run.next_jobs())
    run.job_sent(job, "w1", T1)
    out = run.job_failed(
        job,
        worker_id="w1",
        error={"type": "KeyError", "message": "k"},
        started_at=T1,
        now=T2,
        duration_ms=1.0,
        retryable=False,
    )
    assert out.finished and run.status is RunStatus.FAILED


def test_retry_policy_classifies_and_spaces_out_attempts():
    import random

    policy = RetryPolicy(max_attempts=4, backoff=1.0, factor=3.0, max_backoff=5.0)
    assert policy.retries(ConnectionError()) and policy.retries(TimeoutError())
    assert not policy.retries(ValueError()) and not policy.retries(KeyError()) and not policy.retries(TypeError())
    delays = [policy.delay(n, random.Random(1)) for n in (1, 2, 3)]
    assert 0.5 <= delays[0] < 1.5 and 1.5 <= delays[1] < 4.5 and 2.5 <= delays[2] < 7.5  # capped at 5 before jitter
    assert RetryPolicy(jitter=False, backoff=2, factor=2).delay(3) == 8
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


def test_cancel_finishes_the_run_and_names_the_job_to_stop():
    run, _ = new_run()
    job = only(run.next_jobs())
    run.job_sent(job, "w1", T1)
    out = run.cancel(T2)
    assert out.cancel == [job] and out.finished and out.dispatch == []
    assert run.status is RunStatus.CANCELLED and run.next_jobs() == []
    assert event_names(out) == ["run_cancelled"]
    with pytest.raises(IllegalTransition):
        run.cancel(T2)


def test_the_step_limit_fails_a_run_that_would_go_on():
    g = Graph("loop").add_node("a", lambda s: None)
    g.add_conditional_edge("a", lambda s: "again", {"again": "a", "done": END})
    run, _ = Run.create(
        run_id="r", graph=g.set_entry_point("a").compile(), graph_version=1, state={}, options={"max_steps": 3}, now=T0
    )
    for _ in range(3):
        job = only(run.next_jobs())
        run.job_sent(job, "w1", T1)
        out = run.job_done(
            job, worker_id="w1", delta={}, removed=[], route="again", started_at=T1, now=T2, duration_ms=1
        )
    assert out.finished and run.status is RunStatus.FAILED
    assert run.error["type"] == "StepLimitExceeded" and "step limit of 3 steps" in run.error["message"]
    assert run.step_count == 3


def test_a_step_that_keeps_losing_its_worker_fails_the_run():
    run, _ = new_run()
    job = only(run.next_jobs())
    for attempt in range(1, MAX_LOST_IN_A_ROW + 1):
        run.job_sent(job, f"w{attempt}", T1)
        out = run.job_lost(job, worker_id=f"w{attempt}", reason="no heartbeat", started_at=T1, now=T2)
        if attempt < MAX_LOST_IN_A_ROW:
            assert out.dispatch and not out.finished
            (job,) = out.dispatch
    assert out.finished and out.dispatch == []
    assert run.status is RunStatus.FAILED
    assert run.error["type"] == "WorkerLost" and run.error["node"] == "a"
    assert f"{MAX_LOST_IN_A_ROW} times in a row" in run.error["message"]
    assert event_names(out) == ["node_lost", "run_failed"]


def test_a_completed_step_resets_the_count_of_lost_workers():
    run, _ = new_run()
    job = only(run.next_jobs())
    for _ in range(MAX_LOST_IN_A_ROW - 1):
        run.job_sent(job, "w1", T1)
        (job,) = run.job_lost(job, worker_id="w1", reason="gone", started_at=T1, now=T2).dispatch
    run.job_sent(job, "w2", T3)
    (job,) = done(run, job, now=T4).dispatch
    run.job_sent(job, "w2", T5)
    out = run.job_lost(job, worker_id="w2", reason="gone", started_at=T5, now=T6)
    assert out.dispatch and run.status is RunStatus.RUNNING


# -- parallel branches -------------------------------------------------------------------------


def fan_graph(reducers: dict | None = None) -> CompiledGraph:
    """a -> (b, c) -> join d -> END"""
    g = Graph("fan", reducers=reducers).add_node("a", node).add_node("b", node).add_node("c", node).add_node("d", node)
    g.add_edge("a", "b").add_edge("a", "c").add_edge(["b", "c"], "d").add_edge("d", END)
    return g.set_entry_point("a").compile()


def through_first_step(run: Run) -> list[JobSpec]:
    job = only(run.next_jobs())
    run.job_sent(job, "w1", T1)
    return done(run, job).dispatch


def branches_out(run: Run) -> list[JobSpec]:
    """Through the first step, with the fan-out's jobs sent to a worker."""
    jobs = through_first_step(run)
    for job in jobs:
        run.job_sent(job, "w1", T3)
    return jobs


def test_a_fan_out_dispatches_every_branch_of_the_step_at_once():
    run, _ = new_run(fan_graph())
    jobs = through_first_step(run)
    assert jobs == [JobSpec("run-1", "fan", "b", 2, 1), JobSpec("run-1", "fan", "c", 2, 1)]
    assert [t["branch"] for t in run.snapshot().plan["tasks"]] == ["b", "c"]


def test_branch_updates_apply_in_branch_order_once_the_last_one_is_in():
    run, _ = new_run(fan_graph({"log": "append"}))
    b, c = through_first_step(run)
    run.job_sent(b, "w1", T3)
    run.job_sent(c, "w2", T3)
    first = done(run, c, delta={"log": ["c"], "only_c": 1}, now=T4)  # c finishes first
    assert first.dispatch == [] and snapshots(first) == [] and event_names(first) == ["node_completed"]
    assert steps(first)[0].branch == "c" and steps(first)[0].delta == {"log": ["c"], "only_c": 1}
    assert run.state == {"x": 1}  # nothing applied mid-step
    out = done(run, b, delta={"log": ["b"]}, now=T5)
    assert run.state == {"x": 1, "log": ["b", "c"], "only_c": 1}  # by branch name, not arrival
    assert out.dispatch == [JobSpec("run-1", "fan", "d", 3, 1)]  # the join fires
    assert events(out)[-1].fields == {"step": 2, "branches": ["b", "c"], "next": ["d"]}


def test_a_join_waits_for_sources_that_finish_in_different_steps():
    g = (
        Graph("uneven")
        .add_node("a", node)
        .add_node("b", node)
        .add_node("b2", node)
        .add_node("c", node)
        .add_node("d", node)
    )
    g.add_edge("a", "b").add_edge("a", "c").add_edge("b", "b2").add_edge(["b2", "c"], "d").add_edge("d", END)
    run, _ = new_run(g.set_entry_point("a").compile())
    b, c = branches_out(run)
    done(run, b, now=T4)
    out = done(run, c, now=T4)
    assert out.dispatch == [JobSpec("run-1", "uneven", "b2", 3, 1)]  # c is a source of the join, d waits
    assert run.snapshot().plan["joins"] == {"b2+c->d": ["c"]}
    (b2,) = out.dispatch
    run.job_sent(b2, "w1", T5)
    assert done(run, b2, now=T6).dispatch == [JobSpec("run-1", "uneven", "d", 4, 1)]
    assert run.snapshot().plan["joins"] == {}


def test_a_write_conflict_fails_the_run_naming_the_key_and_branches():
    run, _ = new_run(fan_graph())
    b, c = branches_out(run)
    done(run, b, delta={"k": 1}, now=T4)
    out = done(run, c, delta={"k": 2}, now=T4)
    assert out.finished and run.status is RunStatus.FAILED
    assert run.error["type"] == "WriteConflict" and run.error["key"] == "k" and run.error["branches"] == ["b", "c"]
    assert "k" not in run.state


def test_a_branch_failing_for_good_waits_for_its_siblings_then_fails_the_run():
    run, _ = new_run(fan_graph())
    b, c = branches_out(run)
    failed = run.job_failed(
        b, worker_id="w1", error={"type": "E", "message": "boom"}, started_at=T3, now=T4, duration_ms=1
    )
    assert not failed.finished and failed.cancel == [] and run.status is RunStatus.RUNNING
    assert snapshots(failed)[-1].plan["tasks"][0]["error"]["message"] == "boom"  # durable while c runs
    out = done(run, c, delta={"c": True}, now=T5)
    assert out.finished and run.status is RunStatus.FAILED
    assert run.error["node"] == "b" and run.error["message"] == "boom"
    assert steps(out)[0].status == "completed"  # c's result is on record


def test_a_lost_branch_is_sent_again_alone():
    run, _ = new_run(fan_graph())
    b, c = branches_out(run)
    done(run, b, now=T4)
    out = run.job_lost(c, worker_id="w1", reason="gone", started_at=T3, now=T5)
    assert out.dispatch == [JobSpec("run-1", "fan", "c", 2, 2)]


def test_a_recovered_run_sends_only_the_branches_without_a_result():
    run, _ = new_run(fan_graph({"log": "append"}))
    b, c = branches_out(run)
    record = run.snapshot()
    finished_b = steps(done(run, b, delta={"log": ["b"]}, now=T4))[0]
    restored = Run(graph=fan_graph({"log": "append"}), graph_version=3, record=record, finished_branches=[finished_b])
    out = restored.recover(T5)
    assert out.dispatch == [c]
    restored.job_sent(c, "w2", T5)
    final = done(restored, c, delta={"log": ["c"]}, now=T6)
    assert restored.state["log"] == ["b", "c"] and final.dispatch == [JobSpec("run-1", "fan", "d", 3, 1)]


def test_a_recovered_run_whose_branch_had_failed_for_good_fails():
    run, _ = new_run(fan_graph())
    b, _c = branches_out(run)
    out = run.job_failed(
        b, worker_id="w1", error={"type": "E", "message": "boom"}, started_at=T3, now=T4, duration_ms=1
    )
    restored = Run(graph=fan_graph(), graph_version=3, record=snapshots(out)[-1])
    recovered = restored.recover(T5)
    assert recovered.finished and restored.status is RunStatus.FAILED and restored.error["node"] == "b"


def test_sends_become_indexed_branches_on_their_payloads():
    g = Graph("mapper", reducers={"out": "append"}).add_node("plan", node).add_node("work", node)
    g.add_conditional_edge("plan", gate, ["work"]).add_edge("work", END)
    run, _ = new_run(g.set_entry_point("plan").compile())
    job = only(run.next_jobs())
    run.job_sent(job, "w1", T1)
    route = [Send("work", {"i": i}).to_wire() for i in range(3)]
    jobs = done(run, job, route=route).dispatch
    assert [j.branch for j in jobs] == ["work[0]", "work[1]", "work[2]"]
    assert [j.job_id for j in jobs] == ["run-1:2:work[0]:1", "run-1:2:work[1]:1", "run-1:2:work[2]:1"]
    assert run.job_input(jobs[1]) == JobInput({"i": 1}, from_send=True)
    for j in reversed(jobs):
        run.job_sent(j, "w1", T3)
    for j in reversed(jobs):  # finishing in reverse
        out = done(run, j, delta={"out": [j.branch]}, now=T4)
    assert out.finished and run.state["out"] == ["work[0]", "work[1]", "work[2]"]


def test_lost_attempts_do_not_spend_the_retry_budget():
    run, _ = new_run(retry_graph(RetryPolicy(max_attempts=2, backoff=0, jitter=False)))
    job = only(run.next_jobs())
    run.job_sent(job, "w1", T1)
    (job,) = run.job_lost(job, worker_id="w1", reason="gone", started_at=T1, now=T2).dispatch
    error = {"type": "ConnectionError", "message": "down"}
    run.job_sent(job, "w2", T3)
    (job,) = run.job_failed(
        job, worker_id="w2", error=error, started_at=T3, now=T4, duration_ms=1, retryable=True
    ).dispatch
    assert job.attempt == 3  # attempt 1 lost, attempt 2 failed: one failure of two allowed
    run.job_sent(job, "w2", T5)
    out = run.job_failed(job, worker_id="w2", error=error, started_at=T5, now=T6, duration_ms=1, retryable=True)
    assert out.finished and run.error["attempts"] == 3


def test_the_count_of_lost_workers_survives_a_restart():
    run, _ = new_run()
    job = only(run.next_jobs())
    for _ in range(MAX_LOST_IN_A_ROW - 1):
        run.job_sent(job, "w1", T1)
        out = run.job_lost(job, worker_id="w1", reason="gone", started_at=T1, now=T2)
        (job,) = out.dispatch
    assert snapshots(out)[-1].plan["tasks"][0]["lost_in_a_row"] == MAX_LOST_IN_A_ROW - 1
    restored = Run(graph=linear_graph(), graph_version=3, record=snapshots(out)[-1])
    (job,) = restored.recover(T3).dispatch
    restored.job_sent(job, "w9", T3)
    last = restored.job_lost(job, worker_id="w9", reason="gone", started_at=T3, now=T4)
    assert last.finished and restored.error["type"] == "WorkerLost"


# -- pausing for a person -----------------------------------------------------------------


def paused_run(options: dict, graph: CompiledGraph | None = None) -> tuple[Run, Instructions]:
    return Run.create(
        run_id="run-p", graph=graph or linear_graph(), graph_version=1, state={"x": 1}, options=options, now=T0
    )


def test_the_paused_status_is_a_row_of_the_transition_table():
    assert TRANSITIONS[RunStatus.PAUSED] == {RunStatus.RUNNING, RunStatus.CANCELLED}
    assert RunStatus.PAUSED in TRANSITIONS[RunStatus.QUEUED] and RunStatus.PAUSED in TRANSITIONS[RunStatus.RUNNING]


def test_interrupt_before_the_entry_pauses_a_new_run_and_resume_sends_the_entry():
    run, out = paused_run({"interrupt_before": ["a"]})
    assert run.status is RunStatus.PAUSED and run.next_jobs() == [] and out.dispatch == []
    assert "run_paused" in event_names(out) and snapshots(out)[-1].plan["pause"]["node"] == "a"
    assert snapshots(out)[-1].initial_state == {"x": 1}  # kept for history and forks
    resumed = run.resume(state_update={"x": 5}, answer=None, by="tester", now=T1)
    assert run.state == {"x": 5} and [j.node for j in resumed.dispatch] == ["a"]
    assert steps(resumed)[0].node == RESUME and steps(resumed)[0].delta == {"x": 5}


def test_interrupt_after_pauses_at_the_step_boundary_and_resume_takes_the_next_step():
    run, _ = paused_run({"interrupt_after": ["a"]})
    job = only(run.next_jobs())
    run.job_sent(job, "w1", T1)
    out = done(run, job, delta={"y": 2})
    assert run.status is RunStatus.PAUSED and out.dispatch == [] and run.state == {"x": 1, "y": 2}
    assert run.pause is not None and run.pause.reason == "interrupt_after" and run.pause.branches == ["b"]
    resumed = run.resume(state_update={}, answer=None, by="tester", now=T3)
    assert [j.node for j in resumed.dispatch] == ["b"] and steps(resumed) == []


def test_a_branch_that_asks_pauses_after_its_siblings_and_only_it_runs_again_with_the_answer():
    run, _ = new_run(fan_graph())
    b, c = branches_out(run)
    out = run.job_interrupted(b, worker_id="w1", payload={"q": "ok?"}, started_at=T3, now=T4, duration_ms=1)
    assert run.status is RunStatus.RUNNING and out.dispatch == []  # c is still out
    out = done(run, c, delta={"c": 1}, now=T4)
    assert run.status is RunStatus.PAUSED and run.pause is not None and run.pause.payload == {"q": "ok?"}
    resumed = run.resume(state_update={}, answer={"value": "yes"}, by="tester", now=T5)
    (again,) = resumed.dispatch
    assert (again.branch, again.attempt) == ("b", 2)
    assert run.job_input(again).answer == {"value": "yes"}
    run.job_sent(again, "w1", T5)
    out = done(run, again, delta={"b": 1}, now=T6)
    assert [j.node for j in out.dispatch] == ["d"] and run.state == {"x": 1, "b": 1, "c": 1}  # c's result kept


def test_pause_on_error_pauses_instead_of_failing_and_resume_gives_a_fresh_budget():
    run, _ = paused_run({"pause_on_error": True})
    job = only(run.next_jobs())
    run.job_sent(job, "w1", T1)
    out = run.job_failed(
        job, worker_id="w1", error={"type": "E", "message": "bad"}, started_at=T1, now=T2, duration_ms=1
    )
    assert run.status is RunStatus.PAUSED and not out.finished and run.pause is not None
    assert run.pause.reason == "error" and run.pause.error is not None and run.pause.error["type"] == "E"
    resumed = run.resume(state_update={"x": 2}, answer=None, by="tester", now=T3)
    (again,) = resumed.dispatch
    assert (again.node, again.attempt) == ("a", 2)


def test_only_a_paused_run_resumes_and_a_recovered_paused_run_sends_nothing():
    run, _ = new_run()
    with pytest.raises(NotPaused, match="queued, not paused"):
        run.resume(state_update={}, answer=None, by="x", now=T1)
    _, out = paused_run({"interrupt_before": ["a"]})
    restored = Run(graph=linear_graph(), graph_version=1, record=snapshots(out)[-1])
    assert restored.status is RunStatus.PAUSED and restored.recover(T2).dispatch == []
    assert restored.pause is not None and restored.pause.node == "a"


def test_a_step_that_grows_the_state_past_its_limit_fails_the_run_and_writes_nothing():
    run, _ = new_run(state={"keep": "k" * 500})
    run.max_state_bytes = 1000
    job = only(run.next_jobs())
    run.job_sent(job, "w1", T1)
    run.job_done(
        job, worker_id="w1", delta={"x": "a" * 300}, removed=[], route=None, started_at=T1, now=T2, duration_ms=1
    )
    assert run.status is RunStatus.RUNNING and run.state["x"] == "a" * 300  # about 820 bytes: within
    job = only(run.next_jobs())
    run.job_sent(job, "w1", T3)
    out = run.job_done(
        job, worker_id="w1", delta={"y": "b" * 200}, removed=[], route=None, started_at=T3, now=T4, duration_ms=1
    )
    assert out.finished and run.status is RunStatus.FAILED
    assert run.error["type"] == "StateTooLarge" and "node 'b'" in run.error["message"], run.error
    assert "y" not in run.state  # the write that broke the limit is not applied
