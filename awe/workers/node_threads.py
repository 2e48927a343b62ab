"""The worker's threads for sync nodes: a fixed set of threads taking calls from one queue.

A sync node is user code that may run for minutes, so it never runs on the
event loop; but most nodes take microseconds, and then the hop to a thread and
back is most of what a step costs the worker. ``ThreadPoolExecutor`` spends
that hop on locks, a work item and a thread-count check per call; here a call
is one ``SimpleQueue.put`` and a ``Future``, the smallest handle that can be
cancelled before it starts, waited on, and watched after it was given up
(:mod:`awe.workers.executor` counts a thread that outlives its node's timeout
as a stuck slot).

The threads start with the first call and are daemons: a node thread that
never returns must not keep the process from exiting (the worker exits with
``os._exit`` when one is still running, see ``awe.cli.worker_process``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from queue import SimpleQueue
from typing import Any

_Call = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class NodeThreads(Executor):
    def __init__(self, count: int, *, name: str = "node") -> None:
        self.count = max(1, count)
        self.name = name
        self._calls: SimpleQueue[_Call | None] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._shut_down = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if self._shut_down:
            raise RuntimeError("cannot run a node after the worker's threads were shut down")
        if not self._threads:
            self._start()
        future: Future[Any] = Future()
        self._calls.put((future, fn, args, kwargs))
        return future

    def _start(self) -> None:
        with self._lock:
            while len(self._threads) < self.count:
                thread = threading.Thread(target=self._serve, name=f"{self.name}_{len(self._threads)}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            future, fn, args, kwargs = call
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while it waited in line
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # the node's own error, reported through the future
                future.set_exception(exc)
            else:
                future.set_result(result)
            del call, future, fn, args, kwargs  # hold no node's state while idle

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Take no more calls; with ``cancel_futures`` drop the ones not started; with ``wait`` join the threads.

        Safe to call more than once (the worker shuts down without waiting, a test harness then waits).
        """
        with self._lock:
            if not self._shut_down:
                self._shut_down = True
                if cancel_futures:
                    self._cancel_waiting()
                for _ in self._threads:
                    self._calls.put(None)
            threads = list(self._threads)
        if wait:
            for thread in threads:
                thread.join()

    def _cancel_waiting(self) -> None:
        """Cancel the calls still in line (the sentinels go in after them, so none is lost)."""
        waiting: list[_Call] = []
        while not self._calls.empty():
            call = self._calls.get_nowait()
            if call is not None:
                waiting.append(call)
        for future, *_ in waiting:
            future.cancel()
