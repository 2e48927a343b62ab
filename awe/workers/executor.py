"""Run one node on one state and describe the outcome as a message.

Everything that touches user code happens here: calling the node, working out
which top-level keys it changed, asking the conditional edge's router where
to go next, checking that what goes back over the wire is plain JSON data, and
holding the node to its timeout. A sync node runs all of that in a thread so
it cannot stall the worker's event loop, unless its graph says it is ``inline``
(it takes microseconds, and the thread's hop would cost more); an async node
runs on the loop.

Python cannot stop a thread. When a sync node outlives its timeout (or its job
is cancelled), the attempt fails at once and the still-running thread is
handed to ``on_abandoned``, so that the worker can count the slot it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

import msgpack

from awe import jsondata
from awe.graph import CompiledGraph, Context, Interrupt, NodeTimeout, Send, Write, apply_writes
from awe.transport.messages import Job, JobDone, JobFailed, JobInterrupted


class NodeOutputError(TypeError):
    """A node returned something the engine cannot store as state."""


def _copy(state: dict[str, Any]) -> dict[str, Any]:
    """An independent copy for the node to work on, so that ``job.state`` stays as it came: it is what
    the node's changes are found against, and the worker may keep it for the run's next job.

    Top-level values that cannot change in place (text, numbers, booleans, None) are shared, so a
    1 MB text costs nothing to copy; containers are copied by a msgpack round trip, which copies plain
    data faster than deepcopy.
    """
    return {key: value if isinstance(value, _IMMUTABLE) else _copy_container(value) for key, value in state.items()}


_IMMUTABLE = (str, int, float, bool, type(None))


def _copy_container(value: Any) -> Any:
    return msgpack.unpackb(msgpack.packb(value, use_bin_type=True), raw=False)


def check_json(value: Any, path: str) -> None:
    """Raise :class:`NodeOutputError` naming the first part of ``value`` the engine cannot store or send."""
    try:
        jsondata.check(value, path)
    except jsondata.NotJsonData as exc:
        raise NodeOutputError(f"{exc}; node outputs must be JSON data") from None


def same_value(a: Any, b: Any) -> bool:
    """Equal and of the same JSON types all the way down (``0 == False`` in Python, not in JSON)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_value(v, b[k]) for k, v in a.items())
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def state_delta(
    before: dict[str, Any], after: dict[str, Any], returned: Any, node: str
) -> tuple[dict[str, Any], list[str]]:
    """The changed top-level keys: in-place mutations of ``after`` plus the returned updates."""
    if returned is not None and not isinstance(returned, dict):
        raise NodeOutputError(f"node {node!r} returned a {type(returned).__name__}; return a dict of updates or None")
    delta = {k: v for k, v in after.items() if k not in before or not same_value(before[k], v)}
    removed = [k for k in before if k not in after]
    if returned:
        delta.update(returned)
        removed = [k for k in removed if k not in returned]
    for key, value in delta.items():
        if not isinstance(key, str):
            raise NodeOutputError(f"node {node!r} returned the key {key!r}; state keys must be strings")
        check_json(value, f"state[{key!r}]")
    return delta, removed


AbandonedThread = Callable[[Future[Any]], None]
"""Told about a node thread that is still running after its attempt was given up."""


def _ignore(_: Future[Any]) -> None:
    pass


async def run_job(
    graph: CompiledGraph, job: Job, ctx: Context, threads: Executor, on_abandoned: AbandonedThread = _ignore
) -> JobDone | JobFailed | JobInterrupted:
    """Execute ``job`` and return the message to send back."""
    spec = graph.nodes.get(job.node)
    started = time.perf_counter()
    try:
        if spec is None:
            raise LookupError(f"graph {graph.name!r} has no node {job.node!r}")
        if spec.is_async:
            deadline = asyncio.timeout(spec.timeout)
            try:
                async with deadline:
                    delta, removed, route = await _run_async(graph, spec.fn, spec.takes_context, job, ctx)
            except TimeoutError:
                if deadline.expired():
                    raise _timeout(job.node, spec.timeout) from None
                raise  # the node's own TimeoutError
        elif spec.inline:
            delta, removed, route = _run_sync(graph, spec.fn, spec.takes_context, job, ctx)
        else:
            delta, removed, route = await _in_thread(
                threads, spec.timeout, job.node, on_abandoned, _run_sync, graph, spec.fn, spec.takes_context, job, ctx
            )
        if inspect.isawaitable(route):  # an async router after a sync node
            route = _plain_route(job.node, await route)
    except asyncio.CancelledError:
        raise
    except Interrupt as asked:
        return _interrupted(job, asked.payload, started)
    except BaseException as exc:
        return JobFailed(
            job_id=job.job_id,
            run_id=job.run_id,
            error=describe_error(exc),
            duration_ms=(time.perf_counter() - started) * 1000,
            retryable=spec is not None and not isinstance(exc, NodeOutputError) and spec.retry.retries(exc),
        )
    return JobDone(
        job_id=job.job_id,
        run_id=job.run_id,
        delta=delta,
        removed=removed,
        route=route,
        duration_ms=(time.perf_counter() - started) * 1000,
    )


async def _in_thread(
    threads: Executor,
    seconds: float | None,
    node: str,
    on_abandoned: AbandonedThread,
    fn: Callable[..., Any],
    *args: Any,
) -> Any:
    """``fn(*args)`` in a thread, given up after ``seconds`` or when the caller is cancelled.

    The thread's end wakes the loop once (``call_soon_threadsafe``) and the timeout is one timer:
    no wrapped future and no ``asyncio.wait``, whose extra futures and turns of the loop cost
    more than a short node itself.
    """
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()
    future = threads.submit(fn, *args)
    future.add_done_callback(functools.partial(_wake, loop, waiter))
    timer = loop.call_later(seconds, _expire, waiter) if seconds is not None else None
    try:
        await waiter
    except _Expired:
        _give_up(future, on_abandoned)
        raise _timeout(node, seconds) from None
    except asyncio.CancelledError:
        _give_up(future, on_abandoned)
        raise
    finally:
        if timer is not None:
            timer.cancel()
    return future.result()


class _Expired(Exception):
    """The node's timeout passed while its thread ran."""


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(_Expired())


def _wake(loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[None], _: Future[Any]) -> None:
    """In the node's thread (or the loop's, for a call already done): the result is ready."""
    with contextlib.suppress(RuntimeError):  # the loop is closed: the worker has stopped
        loop.call_soon_threadsafe(_settle, waiter)


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():  # not given up meanwhile
        waiter.set_result(None)


def _give_up(future: Future[Any], on_abandoned: AbandonedThread) -> None:
    if not future.cancel():  # already running: it keeps its thread until it returns
        on_abandoned(future)


def _timeout(node: str, seconds: float | None) -> NodeTimeout:
    return NodeTimeout(f"node {node!r} did not finish within its timeout of {seconds:g}s")


def _interrupted(job: Job, payload: Any, started: float) -> JobInterrupted | JobFailed:
    """The node asks a person; its question must be JSON data like anything the engine keeps."""
    duration_ms = (time.perf_counter() - started) * 1000
    try:
        check_json(payload, "the Interrupt's payload")
    except NodeOutputError as exc:
        return JobFailed(job_id=job.job_id, run_id=job.run_id, error=describe_error(exc), duration_ms=duration_ms)
    return JobInterrupted(job_id=job.job_id, run_id=job.run_id, payload=payload, duration_ms=duration_ms)


def describe_error(exc: BaseException) -> dict[str, Any]:
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
    }


def _args(fn_takes_context: bool, state: dict[str, Any], ctx: Context) -> tuple[Any, ...]:
    return (state, ctx) if fn_takes_context else (state,)


def _run_sync(
    graph: CompiledGraph, fn: Callable[..., Any], takes_context: bool, job: Job, ctx: Context
) -> tuple[dict[str, Any], list[str], Any]:
    state = _copy(job.state)
    returned = fn(*_args(takes_context, state, ctx))
    if inspect.isawaitable(returned):
        raise NodeOutputError(f"node {job.node!r} returned an awaitable from a sync function; make it `async def`")
    delta, removed = _updates(graph, job, state, returned)
    return delta, removed, _route(graph, job.node, job.state, delta, removed)


async def _run_async(
    graph: CompiledGraph, fn: Callable[..., Any], takes_context: bool, job: Job, ctx: Context
) -> tuple[dict[str, Any], list[str], Any]:
    state = _copy(job.state)
    returned = await fn(*_args(takes_context, state, ctx))
    delta, removed = _updates(graph, job, state, returned)
    route = _route(graph, job.node, job.state, delta, removed)
    if inspect.isawaitable(route):
        route = _plain_route(job.node, await route)
    return delta, removed, route


def _updates(graph: CompiledGraph, job: Job, after: dict[str, Any], returned: Any) -> tuple[dict[str, Any], list[str]]:
    """The node's updates to the run's state: what it changed in ``after`` (its copy of ``job.state``)
    and what it returned.

    On a Send's payload only the returned dict counts: the payload is the node's input, not the
    run's state. A key with a reducer takes its update from the returned dict too, because an
    in-place change cannot say whether it is the whole new value or the part to add.
    """
    if job.from_send:
        delta, _ = state_delta({}, {}, returned, job.node)
        return delta, []
    delta, removed = state_delta(job.state, after, returned, job.node)
    for key in delta.keys() & graph.reducers.keys():
        if not (isinstance(returned, dict) and key in returned):
            raise NodeOutputError(
                f"node {job.node!r} changed the state key {key!r} in place, but that key has a reducer "
                f"({graph.reducers[key].name}); return its update instead, e.g. {{{key!r}: [new_item]}}"
            )
    return delta, removed


def _route(graph: CompiledGraph, node: str, before: dict[str, Any], delta: dict[str, Any], removed: list[str]) -> Any:
    """The router's answer (or an awaitable of it); None for a node without a conditional edge."""
    cond = graph.routers.get(node)
    if cond is None:
        return None
    route = cond.router(apply_writes(before, [Write(node, delta, removed)], graph.reducers))
    return route if inspect.isawaitable(route) else _plain_route(node, route)


def _plain_route(node: str, route: Any) -> Any:
    """The router's answer as it goes over the wire: a branch key, or a list of keys and Sends."""
    if isinstance(route, (list, tuple)):
        items = [_plain_route_item(node, item) for item in route]
        for i, item in enumerate(x for x in items if isinstance(x, dict)):
            check_json(item["payload"], f"the router of {node!r}, Send {i} to {item['send']!r}: payload")
        return items
    if isinstance(route, Send):
        return _plain_route(node, [route])
    return _plain_route_item(node, route)


def _plain_route_item(node: str, item: Any) -> Any:
    if isinstance(item, Send):
        if not isinstance(item.payload, dict):
            raise NodeOutputError(
                f"the router of node {node!r} sent a {type(item.payload).__name__}; a Send's payload is a dict"
            )
        return item.to_wire()
    if hasattr(item, "value") and isinstance(item.value, (str, int)):  # an Enum member
        item = item.value
    if item is None or isinstance(item, (str, int, bool)):
        check_json(item, f"the router of {node!r}: its answer")
        return item
    raise NodeOutputError(
        f"the router of node {node!r} returned a {type(item).__name__}; return a branch key, a list of them, or Sends"
    )
