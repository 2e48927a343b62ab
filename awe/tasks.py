"""Background tasks that cannot die quietly.

An ``asyncio.Task`` that raises and is never awaited fails in silence: the
dispatch loop stops, nothing is logged, and the process looks healthy while
no run moves. Every long-lived loop of a process (socket readers, the
dispatcher, the store writer, heartbeats) is started through
:class:`BackgroundTasks` instead. When one ends for any reason other than
being cancelled, its traceback is logged, :attr:`~BackgroundTasks.failures`
names it (the coordinator's ``/healthz`` then answers 503), and
:attr:`~BackgroundTasks.fatal` is set, which the process's main function
waits on: it stops what it can and exits with ``EXIT_SOFTWARE`` so that its
supervisor (``awe up``, supervisord) starts a fresh process, which recovers
the runs from the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import structlog

log = structlog.get_logger("awe.tasks")


class BackgroundTasks:
    """The long-lived tasks of one process; one instance per process."""

    def __init__(self) -> None:
        self.failures: dict[str, str] = {}
        """Each task that died, by name, with its error."""
        self.fatal = asyncio.Event()
        """Set when a task dies: the process can no longer do its job and should exit."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ending: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Run ``coro`` as a task that is expected to run until it is cancelled."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._ended)
        return task

    def ending(self, task: asyncio.Task[Any]) -> None:
        """``task`` is being told to finish (a store closing its writer): its return is not a death."""
        self._ending.add(task)

    def _ended(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or (task in self._ending and task.exception() is None):
            self._ending.discard(task)
            return
        self._ending.discard(task)
        error = task.exception()
        name = task.get_name()
        if error is None:
            self.failures[name] = "the task returned, but it should run until the process stops"
            log.error("background_task_died", task=name, reason=self.failures[name])
        else:
            self.failures[name] = f"{type(error).__name__}: {error}"
            log.error("background_task_died", task=name, exc_info=error)
        self.fatal.set()

    async def cancel(self, *tasks: asyncio.Task[Any]) -> None:
        """Cancel these tasks (all of them if none is named) and wait until they have ended."""
        chosen = list(tasks) if tasks else list(self._tasks)
        for task in chosen:
            task.cancel()
        await asyncio.gather(*chosen, return_exceptions=True)
