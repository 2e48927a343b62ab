"""The Celery app and tasks of ``compare.py``: imported by the Celery worker process and by the cell that drives it.

The broker and the result backend are the Redis that ``celery_engine`` starts; its URL comes in
``AWE_BENCH_REDIS``. JSON throughout, Celery's default. A chain node gets the whole state and
returns the whole state (Celery keeps no state between tasks), stamped with the time it
finished, so that a run's latency ends when its last task did, not when the client read it.
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery

from engines.common import step_update

REDIS = os.environ.get("AWE_BENCH_REDIS", "redis://127.0.0.1:6379/0")

app = Celery("awe_bench", broker=REDIS, backend=REDIS)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.step")
def step(state: dict[str, Any], name: str) -> dict[str, Any]:
    return {**state, **step_update(state, name), "finished_at": time.time()}


@app.task(name="bench.burn")
def burn(iterations: int) -> int:
    from bench_graphs import burn as work

    return work(iterations)


@app.task(name="bench.total")
def total(values: list[int]) -> int:
    return sum(values)


@app.task(name="bench.sleep")
def sleep_one_second() -> bool:
    """Celery tasks are sync: the prefork pool's 2 processes each wait out one task at a time."""
    time.sleep(1.0)
    return True
