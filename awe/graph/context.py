"""What a node may receive as its second argument."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Context:
    """Facts about the job a node runs in.

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
