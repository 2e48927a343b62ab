"""The values a run's state machine trades in: jobs, the branches of a step, and instructions.

Plain data with no rules: :mod:`~awe.coordinator.run_machine` decides what
they mean. ``Task`` is what a run persists of its current step (in the run
record's ``plan``), so that a restarted coordinator can pick the step up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class JobSpec:
    """One attempt at one branch of one step of a run."""

    run_id: str
    graph_id: str
    node: str
    step: int
    attempt: int
    branch: str = ""
    """Unique within the step; defaults to the node's name (a Send's branch is ``node[i]``)."""
    graph_version: int = field(default=0, compare=False)
    """The run's graph version, which a worker needs to find a JSON graph's definition. Not part of
    the job's identity: the run determines it."""
    job_id: str = field(init=False, compare=False, repr=False)
    """``run:step:branch:attempt``, computed once: it is read many times on the dispatch path."""

    def __post_init__(self) -> None:
        if not self.branch:
            object.__setattr__(self, "branch", self.node)
        object.__setattr__(self, "job_id", f"{self.run_id}:{self.step}:{self.branch}:{self.attempt}")


@dataclass
class Task:
    """One branch of the current step, as persisted in the run's plan."""

    node: str
    index: int | None = None
    """The position of this Send among the step's Sends to ``node``; None for a node run on the state."""
    payload: dict[str, Any] | None = None
    attempt: int = 1
    """The number of the next (or current) attempt: failed and lost attempts both count."""
    failures: int = 0
    """Attempts in which the node failed (raised, timed out); its retry policy bounds these."""
    lost_in_a_row: int = 0
    """Attempts in a row whose worker vanished; ``MAX_LOST_IN_A_ROW`` bounds these."""
    error: dict[str, Any] | None = None
    """Set when the branch has failed for good; the run fails (or pauses, with ``pause_on_error``)
    once its other branches are done."""
    interrupt: dict[str, Any] | None = None
    """``{"payload": ...}`` while the node waits for a person: it raised ``Interrupt(payload)``."""
    answer: dict[str, Any] | None = None
    """``{"value": ...}``: the person's answer, given to the node when it runs again (``ctx.answer``)."""

    @property
    def branch(self) -> str:
        return self.node if self.index is None else f"{self.node}[{self.index}]"

    @property
    def order(self) -> tuple[str, int]:
        """Branches apply their updates in this order: by node name, then by Send index."""
        return (self.node, -1 if self.index is None else self.index)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"branch": self.branch, "node": self.node, "attempt": self.attempt}
        if self.index is not None:
            out["index"] = self.index
            out["payload"] = self.payload
        if self.failures:
            out["failures"] = self.failures
        if self.lost_in_a_row:
            out["lost_in_a_row"] = self.lost_in_a_row
        if self.error is not None:
            out["error"] = self.error
        if self.interrupt is not None:
            out["interrupt"] = self.interrupt
        if self.answer is not None:
            out["answer"] = self.answer
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Task:
        return cls(
            node=data["node"],
            index=data.get("index"),
            payload=data.get("payload"),
            attempt=data.get("attempt", 1),
            failures=data.get("failures", 0),
            lost_in_a_row=data.get("lost_in_a_row", 0),
            error=data.get("error"),
            interrupt=data.get("interrupt"),
            answer=data.get("answer"),
        )


@dataclass(frozen=True)
class JobInput:
    """What a job's node runs on: the run's state (or a Send's payload), and the person's answer."""

    state: dict[str, Any]
    from_send: bool = False
    answer: dict[str, Any] | None = None
    """``{"value": ...}`` when the node is run again after an interrupt the person answered."""


@dataclass
class Pause:
    """Why a paused run waits for a person, as persisted in its plan and shown by the API.

    ``reason`` is ``interrupt_before`` / ``interrupt_after`` (declared on the graph or the run),
    ``interrupt`` (a node raised ``Interrupt``, its ``payload`` is the question), or ``error`` (a
    node failed for good and the run pauses on errors; ``error`` says how).
    """

    reason: str
    node: str
    branches: list[str] = field(default_factory=list)
    payload: Any = None
    error: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"reason": self.reason, "node": self.node, "branches": self.branches}
        if self.reason == "interrupt":
            out["payload"] = self.payload
        if self.error is not None:
            out["error"] = self.error
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Pause:
        return cls(data["reason"], data["node"], list(data.get("branches", [])), data.get("payload"), data.get("error"))


@dataclass(frozen=True)
class BranchResult:
    node: str
    delta: dict[str, Any]
    removed: list[str]
    route: Any


@dataclass
class Instructions:
    """What the coordinator must do after a fact: persist, then (once durable) dispatch."""

    records: list[Any] = field(default_factory=list)
    dispatch: list[JobSpec] = field(default_factory=list)
    dispatch_delay: float = 0.0
    """Seconds to wait (after the commit) before dispatching: a retry's back-off."""
    cancel: list[JobSpec] = field(default_factory=list)
    """Jobs in flight that their workers should stop."""
    finished: bool = False
    may_wait: bool = False
    """The records only report what already happened, and nothing waits for them to be durable: they
    may ride with the store's next commit instead of making one of their own (see ``Store.submit``).
    Losing them in a crash loses a report, not a fact: the run goes on from its last step."""


def join_key(sources: tuple[str, ...], target: str) -> str:
    return f"{'+'.join(sources)}->{target}"
