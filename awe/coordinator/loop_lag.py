"""How late the coordinator's event loop runs a timer: the time something kept it from everything else.

Every message from a worker, every HTTP request and every commit's callbacks run on one event
loop, so any piece of work that holds it (a slow serialisation, a commit made in place, a
long scan) delays all of them at once. A timer that should fire every ``interval`` seconds
and fires late says by how much, whatever the cause: that lateness is what
``awe_event_loop_lag_seconds`` shows, and what a change on the data path must not grow.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

INTERVAL = 0.1
"""Seconds between samples: often enough to catch a burst, rarely enough to cost nothing."""


async def watch(observe: Callable[[float], None], interval: float = INTERVAL) -> None:
    """Report each sample's lateness (seconds) to ``observe``, until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval
        await asyncio.sleep(interval)
        observe(max(0.0, loop.time() - due))
