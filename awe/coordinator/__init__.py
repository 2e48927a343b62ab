"""The coordinator process: graph topology, the runs' state machines, dispatch to workers, persistence."""

from awe.coordinator.errors import RequestError, RunFinished, ShuttingDown, UnknownGraph, UnknownRun
from awe.coordinator.events import FINAL_EVENTS, RunEvent
from awe.coordinator.run_machine import RunStatus
from awe.coordinator.service import Coordinator

__all__ = [
    "FINAL_EVENTS",
    "Coordinator",
    "RequestError",
    "RunEvent",
    "RunFinished",
    "RunStatus",
    "ShuttingDown",
    "UnknownGraph",
    "UnknownRun",
]
