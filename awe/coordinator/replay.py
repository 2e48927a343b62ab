"""A run's past, rebuilt from what the store keeps: the state after each step, and where a fork starts.

The store keeps a run's initial state and every step record (each branch's
delta and route, each person's ``__resume__`` update). Replaying them through
the same rules the run followed gives back every intermediate state without
storing one per step. A step's updates are applied in the order the run
applied them: a person's updates first (they happened while the step waited),
then the branches' writes, in branch order, through the graph's reducers.

A fork replays the run's state machine itself (:meth:`Run.advance`), so the
new run starts with exactly the state, the next step's branches (``Send``
payloads included) and the join progress the parent had after that step.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from awe.coordinator.plan import BranchResult, Task
from awe.coordinator.run_machine import RESUME, Run, RunStatus
from awe.graph import CompiledGraph, Write, apply_writes
from awe.store import RunRecord, StepRecord


class ReplayError(ValueError):
    """The run's records cannot give what was asked (a step it never completed, a run kept before history)."""


def _by_step(records: list[StepRecord]) -> dict[int, list[StepRecord]]:
    steps: dict[int, list[StepRecord]] = defaultdict(list)
    for record in records:
        steps[record.step].append(record)
    return steps


def _order(record: StepRecord) -> tuple[str, int]:
    """Branch order, as the run applies writes: node name, then Send index (``node[3]``)."""
    index = record.branch[len(record.node) + 1 : -1] if record.branch != record.node else ""
    return (record.node, int(index) if index.isdigit() else -1)


def history(
    graph: CompiledGraph, initial_state: dict[str, Any], records: list[StepRecord], *, completed_steps: int
) -> list[tuple[StepRecord, dict[str, Any] | None]]:
    """Each step record with the state after it (after its superstep, for a branch of a completed one).

    A branch of the step under way has no state after it yet (None); a failed, lost or interrupted
    attempt leaves the state as it was.
    """
    state = initial_state
    out: list[tuple[StepRecord, dict[str, Any] | None]] = []
    for step, records_of_step in sorted(_by_step(records).items()):
        updates = sorted((r for r in records_of_step if r.node == RESUME), key=lambda r: r.attempt)
        for update in updates:
            state = {**state, **update.delta}
            out.append((update, state))
        branches = [r for r in records_of_step if r.node != RESUME]
        done = sorted((r for r in branches if r.status == "completed"), key=_order)
        after: dict[str, Any] | None = None
        if step <= completed_steps:
            after = apply_writes(state, [Write(r.branch, r.delta, r.removed) for r in done], graph.reducers)
        for record in branches:
            out.append((record, after if record.status == "completed" else state))
        if after is not None:
            state = after
    return out


@dataclass(frozen=True)
class ForkPoint:
    """Where a fork of a run starts: the state after a step and the branches the parent ran next."""

    state: dict[str, Any]
    step: int
    tasks: list[Task]
    joins: dict[str, list[str]]


def fork_point(
    graph: CompiledGraph, graph_version: int, initial_state: dict[str, Any], records: list[StepRecord], step: int
) -> ForkPoint:
    """Replay the parent's state machine through ``step``; :class:`ReplayError` if it cannot go there."""
    run = Run(graph=graph, graph_version=graph_version, record=_replay_record(graph, graph_version, initial_state))
    run.replaying = True
    steps = _by_step(records)
    for number in range(1, step + 1):
        for update in sorted((r for r in steps.get(number, []) if r.node == RESUME), key=lambda r: r.attempt):
            run.state = {**run.state, **update.delta}
        done = {r.branch: r for r in steps.get(number, []) if r.status == "completed" and r.branch in run.tasks}
        if set(done) != set(run.tasks):
            raise ReplayError(f"step {number} of the run never completed; fork from a step it completed")
        run.advance({b: BranchResult(r.node, r.delta, r.removed, r.route) for b, r in done.items()}, now="")
        if run.status is not RunStatus.RUNNING:
            raise ReplayError(f"the run ended ({run.status.value}) at step {number}; fork from an earlier step")
    tasks = [Task(t.node, index=t.index, payload=t.payload) for t in run.tasks.values()]
    joins = {k: sorted(v) for k, v in run.joins_seen.items() if v}
    return ForkPoint(state=run.state, step=step, tasks=tasks, joins=joins)


def _replay_record(graph: CompiledGraph, graph_version: int, state: dict[str, Any]) -> RunRecord:
    return RunRecord(
        run_id="replay",
        graph_id=graph.name,
        graph_version=graph_version,
        status=RunStatus.RUNNING.value,
        state=state,
        step_count=0,
        current_node=graph.entry,
        plan={"tasks": [Task(graph.entry).to_json()]},
        error=None,
        options={"max_steps": 1 << 62},
        created_at="",
        updated_at="",
    )
