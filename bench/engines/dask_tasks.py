"""The functions Dask's workers run for ``compare.py``; a module of its own so that they pickle by reference."""

from __future__ import annotations

import time
from typing import Any

from engines.common import step_update


def step(state: dict[str, Any], name: str) -> dict[str, Any]:
    """A chain node on the whole state (Dask keeps no state between tasks), stamped with when it finished."""
    return {**state, **step_update(state, name), "finished_at": time.time()}


def burn(iterations: int) -> int:
    from bench_graphs import burn as work

    return work(iterations)


def sleep_one_second(_: int) -> bool:
    """A sync wait: each worker thread waits out one task at a time."""
    time.sleep(1.0)
    return True
