"""What a node may receive as its second argument."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
