"""Faults injected into an awe process that loads this module with ``--graphs``; for tests only.

It defines no graph. Importing it wraps two internal methods so that each raises once, outside
the per-job and per-record error handling, when the file named by ``AWE_TEST_FAULT_FILE`` holds
the fault's name (the file is removed as the fault fires, so a restarted process runs clean):

- ``dispatch``: the dispatcher's pump loop raises while looking for the next job;
- ``store``: the store's writer loop raises while taking its next batch.

The product has no test hooks: these faults stand for a bug in the loop itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from awe.coordinator.dispatcher import Dispatcher
from awe.store.sqlite import Store

FAULT_FILE = os.environ.get("AWE_TEST_FAULT_FILE")


def _fires(name: str) -> bool:
    if FAULT_FILE is None:
        return False
    path = Path(FAULT_FILE)
    try:
        if path.read_text().strip() != name:
            return False
    except FileNotFoundError:
        return False
    path.unlink()
    return True


_take_next = Dispatcher._take_next
_take_batch = Store._take_batch


def _faulty_take_next(self: Dispatcher) -> Any:
    if _fires("dispatch"):
        raise RuntimeError("injected fault in the dispatch loop")
    return _take_next(self)


async def _faulty_take_batch(self: Store) -> Any:
    batch = await _take_batch(self)
    if _fires("store"):
        raise RuntimeError("injected fault in the store writer")
    return batch


Dispatcher._take_next = _faulty_take_next
Store._take_batch = _faulty_take_batch
