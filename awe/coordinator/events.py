"""The run event vocabulary and the in-process feed of committed events.

Every entry of a run's log stream has one of the names below; nothing else
emits run events. The :class:`EventBus` only ever carries events that are
already committed, so a reader that combines "events from the database" with
"events from the bus" and dedupes by sequence number sees every event exactly
once, in order.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from enum import StrEnum

from awe.store import EventRecord


class RunEvent(StrEnum):
    RUN_QUEUED = "run_queued"
    RUN_STARTED = "run_started"
    RUN_WAITING = "run_waiting"
    """No connected worker can run the run's next node (``fields.reason`` says what is missing);
    the run waits, and goes on when such a worker connects."""
    NODE_STARTED = "node_started"
    NODE_LOG = "node_log"
    NODE_COMPLETED = "node_completed"
    NODE_FAILED = "node_failed"
    NODE_RETRYING = "node_retrying"
    """The node failed with an error its retry policy accepts; it runs again after a back-off."""
    NODE_LOST = "node_lost"
    """The worker running the node vanished; the node is sent again."""
    STEP_COMPLETED = "step_completed"
    """Every branch of a (super)step finished; their updates are applied and the next step begins."""
    RUN_COMPLETED = "run_completed"
    RUN_FAILED = "run_failed"
    RUN_CANCELLED = "run_cancelled"
    NODE_INTERRUPTED = "node_interrupted"
    """The node raised ``Interrupt``: it asks a person something (``fields.payload``)."""
    RUN_PAUSED = "run_paused"
    """The run waits for a person (``fields.reason``, ``node``, and the question or error); see resume."""
    RUN_RESUMED = "run_resumed"
    """A person resumed the run (``fields.by``, the keys they changed, whether they answered)."""


FINAL_EVENTS = frozenset({RunEvent.RUN_COMPLETED, RunEvent.RUN_FAILED, RunEvent.RUN_CANCELLED})
"""Each run's stream ends with exactly one of these."""


class Subscription:
    """One reader's live feed of one run; bounded, so a slow reader never holds the engine back."""

    MAX_BUFFERED = 1024

    def __init__(self, bus: EventBus, run_id: str) -> None:
        self.bus = bus
        self.run_id = run_id
        self.queue: asyncio.Queue[EventRecord] = asyncio.Queue(self.MAX_BUFFERED)
        self.overflowed = False
        """Events were dropped for this reader; it must catch up from the database."""

    def offer(self, event: EventRecord) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True

    def reset(self) -> None:
        """Forget the buffer before catching up from the database."""
        while not self.queue.empty():
            self.queue.get_nowait()
        self.overflowed = False

    def close(self) -> None:
        self.bus.unsubscribe(self)


class EventBus:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[Subscription]] = defaultdict(set)

    def subscribe(self, run_id: str) -> Subscription:
        sub = Subscription(self, run_id)
        self._subscribers[run_id].add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subscribers.get(sub.run_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subscribers[sub.run_id]

    def publish(self, events: list[EventRecord]) -> None:
        for event in events:
            for sub in self._subscribers.get(event.run_id, ()):
                sub.offer(event)

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subscribers.values())
