"""What a node may receive as its second argument."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class Interrupt(Exception):
    """Raised by a node to pause its run and ask a person something (``payload``: the question).

    The run's other branches finish; the run becomes ``paused`` with the payload in its state
    view and in a ``run_paused`` event. ``POST /runs/{run_id}/resume`` with an ``answer`` runs the
    node again from its start, and ``ctx.interrupt(payload)`` then returns that answer instead of
    raising. It is never retried: a question is not a failure.
    """

    def __init__(self, payload: Any = None) -> None:
        super().__init__(payload)
        self.payload = payload


@dataclass(frozen=True)
class Context:
    """Facts about the job a node runs in.

    ``step`` is the superstep: nodes that run in parallel share it.

    ``log`` is a structlog logger already bound to the run, node and worker;
    what a node logs through it goes to the worker's log file and to the run's
    event stream (``node_log`` events on ``/ws/logs/{run_id}``).
    """

    run_id: str
    graph_id: str
    node: str
    step: int
    attempt: int
    worker_id: str
    log: Any
    branch: str = ""
    """Unique within the step: the node's name, or ``node[i]`` for the i-th ``Send`` to it. With
    ``run_id`` and ``step`` it makes an idempotency key for the node's side effects."""
    answer: dict[str, Any] | None = field(default=None, repr=False)
    """``{"value": ...}`` when the node runs again after a person answered its ``Interrupt``."""

    def interrupt(self, payload: Any = None) -> Any:
        """Ask a person: the first time, pause the run with ``payload`` as the question; once the
        run is resumed with an answer, return that answer (the node runs again from its start)."""
        if self.answer is not None:
            return self.answer.get("value")
        raise Interrupt(payload)
