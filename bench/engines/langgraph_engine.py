"""LangGraph in this process, with its SQLite checkpointer (every step written before the next) or with none.

The graphs are the same shapes as awe's: a 10-node and a 3-node chain of the same sync node,
8 CPU branches and a join (a list reducer collects their values), and one async node that
sleeps 1 s. Sync nodes run in LangGraph's thread pool under ``ainvoke``, as awe runs them in a
worker's threads; all of it shares this one interpreter, so CPU work gets one core.

Durable means ``AsyncSqliteSaver`` with ``durability="sync"``: the checkpoint of a step is
written before the next step starts (LangGraph's default, ``"async"``, writes it while the next
step runs). Its SQLite file is LangGraph's default setup (WAL, ``synchronous`` left at SQLite's
default).
"""

from __future__ import annotations

import asyncio
import operator
import time
import uuid
from pathlib import Path
from typing import Annotated, Any, TypedDict

from engines.common import CHAIN_LENGTH, FAN_BRANCHES, PidLog, chain_state, check_chain, read_sqlite, step_update
from engines.recovery import in_process_recovery

CHECKPOINTS_PER_CHAIN = CHAIN_LENGTH + 2
"""A finished chain10 thread's checkpoints: its input, the start, and one per node."""


class ChainState(TypedDict, total=False):
    counter: int
    visited: list[str]
    text: str


class FanState(TypedDict, total=False):
    iterations: int
    values: Annotated[list[int], operator.add]
    total: int


class WaitState(TypedDict, total=False):
    slept: bool


def _node(name: str) -> Any:
    def node(state: ChainState) -> dict[str, Any]:
        return step_update(dict(state), name)

    node.__name__ = name
    return node


def chain_graph(length: int) -> Any:
    """``n0 -> ... -> n{length-1}``, each node :func:`engines.common.step_update`."""
    from langgraph.graph import END, START, StateGraph

    graph = StateGraph(ChainState)
    for i in range(length):
        graph.add_node(f"n{i}", _node(f"n{i}"))
        graph.add_edge(START if i == 0 else f"n{i - 1}", f"n{i}")
    graph.add_edge(f"n{length - 1}", END)
    return graph


def _branch(state: FanState) -> dict[str, Any]:
    from bench_graphs import burn

    return {"values": [burn(state["iterations"])]}


def fan_graph() -> Any:
    """split -> 8 branches of CPU -> join, like awe's ``fan8``."""
    from langgraph.graph import END, START, StateGraph

    graph = StateGraph(FanState)
    graph.add_node("split", lambda state: {})
    graph.add_edge(START, "split")
    branches = [f"b{i}" for i in range(FAN_BRANCHES)]
    for name in branches:
        graph.add_node(name, _branch)
        graph.add_edge("split", name)
    graph.add_node("join", lambda state: {"total": sum(state["values"])})
    graph.add_edge(branches, "join")
    graph.add_edge("join", END)
    return graph


async def _sleep_one_second(state: WaitState) -> dict[str, Any]:
    await asyncio.sleep(1.0)
    return {"slept": True}


def wait_graph() -> Any:
    from langgraph.graph import END, START, StateGraph

    graph = StateGraph(WaitState)
    graph.add_node("wait", _sleep_one_second)
    graph.add_edge(START, "wait")
    graph.add_edge("wait", END)
    return graph


class LangGraphEngine:
    """Compiled graphs, with an ``AsyncSqliteSaver`` on one ``aiosqlite`` connection when ``durable``."""

    def __init__(self, *, durable: bool) -> None:
        self.name = "langgraph-sqlite" if durable else "langgraph"
        self.durable = durable
        self.notes: list[str] = []
        self._waiting: list[asyncio.Task[Any]] = []
        self._conn: Any = None

    async def start(self, folder: Path, pids: PidLog) -> None:
        import langgraph.version

        self.folder, self.pids = folder, pids
        saver = None
        if self.durable:
            import aiosqlite
            from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

            self._conn = await aiosqlite.connect(folder / "checkpoints.sqlite")
            saver = AsyncSqliteSaver(self._conn)
            await saver.setup()
        self.graphs = {
            "chain10": chain_graph(CHAIN_LENGTH).compile(checkpointer=saver),
            "chain3": chain_graph(3).compile(checkpointer=saver),
            "fan8": fan_graph().compile(checkpointer=saver),
            "sleep1": wait_graph().compile(checkpointer=saver),
        }
        self.notes[:] = [f"langgraph {langgraph.version.__version__}"]

    async def stop(self) -> None:
        for task in self._waiting:
            task.cancel()
        await asyncio.gather(*self._waiting, return_exceptions=True)
        if self._conn is not None:
            await self._conn.close()

    def processes(self) -> list[int]:
        """This process: LangGraph runs in it (so the figure includes the benchmark's own few MB)."""
        import os

        return [os.getpid()]

    async def invoke(self, graph_id: str, state: dict[str, Any]) -> dict[str, Any]:
        """One run to its final state; with a checkpointer, under a thread id of its own."""
        graph = self.graphs[graph_id]
        if not self.durable:
            return dict(await graph.ainvoke(state))
        config = {"configurable": {"thread_id": uuid.uuid4().hex}}
        return dict(await graph.ainvoke(state, config, durability="sync"))

    async def _timed(self, state: dict[str, Any]) -> tuple[float, float]:
        """In-process, the run ends when ``ainvoke`` returns its final state."""
        submitted = time.time()
        check_chain(await self.invoke("chain10", state), CHAIN_LENGTH)
        return submitted, time.time()

    async def chain(self, runs: int, text_bytes: int) -> list[tuple[float, float]]:
        state = chain_state(text_bytes)
        return list(await asyncio.gather(*(self._timed(state) for _ in range(runs))))

    async def chain3(self) -> None:
        check_chain(await self.invoke("chain3", chain_state(16)), 3)

    async def fanout(self, iterations: int) -> None:
        final = await self.invoke("fan8", {"iterations": iterations, "values": []})
        if len(final["values"]) != FAN_BRANCHES:
            raise AssertionError(f"fan8 ended with {len(final['values'])} values")

    async def start_waiting(self, runs: int) -> None:
        self._waiting = [asyncio.create_task(self.invoke("sleep1", {})) for _ in range(runs)]

    async def finished_waiting(self) -> int:
        return sum(t.done() and not t.cancelled() and t.exception() is None for t in self._waiting)

    # -- recovery (with the checkpointer only) --------------------------------------------------

    async def recovery(self, runs: int, cap: float) -> dict[str, Any]:
        return await in_process_recovery(self, self.folder, self.pids, runs, cap)

    def _config(self, i: int) -> dict[str, Any]:
        return {"configurable": {"thread_id": f"rec-{i:05d}"}}

    async def launch_recovery_runs(self, runs: int) -> None:
        graph, state = self.graphs["chain10"], chain_state(1024)
        self._waiting = [
            asyncio.create_task(graph.ainvoke(state, self._config(i), durability="sync")) for i in range(runs)
        ]

    def recovery_progress(self, folder: Path) -> dict[str, tuple[int, bool]]:
        """Per thread: nodes checkpointed, and whether all were."""
        sql = "SELECT thread_id, COUNT(*) FROM checkpoints WHERE thread_id LIKE 'rec-%' GROUP BY thread_id"
        found = read_sqlite(folder / "checkpoints.sqlite", sql)
        rows = found[0] if found else []
        return {tid: (max(n - 2, 0), n >= CHECKPOINTS_PER_CHAIN) for tid, n in rows}

    async def resume(self, runs: int) -> None:
        """LangGraph's way: every thread whose last checkpoint has a next node is invoked again with no input."""
        graph = self.graphs["chain10"]

        async def one(i: int) -> None:
            if (await graph.aget_state(self._config(i))).next:
                self._waiting.append(asyncio.create_task(graph.ainvoke(None, self._config(i), durability="sync")))

        await asyncio.gather(*(one(i) for i in range(runs)))
