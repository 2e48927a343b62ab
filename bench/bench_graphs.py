"""Graphs for the benchmarks (served with ``--graphs bench_graphs`` from this folder)."""

from __future__ import annotations

import asyncio
import random

from awe import END, Graph

CHAIN_LENGTH = 10


def _step(name: str):
    def step(state):
        return {"counter": state["counter"] + 1, "visited": [*state["visited"], name]}

    step.__name__ = name
    return step


def _async_step(name: str):
    """:func:`_step` as an ``async def``, as a node that calls a model or a tool is written."""

    async def step(state):
        return {"counter": state["counter"] + 1, "visited": [*state["visited"], name]}

    step.__name__ = name
    return step


def _chain(graph_id: str, length: int, *, inline: bool = False, is_async: bool = False) -> Graph:
    """``n0 -> n1 -> ... -> END``, each node a :func:`_step`; any other state key rides along untouched."""
    graph = Graph(graph_id)
    for i in range(length):
        step = _async_step(f"n{i}") if is_async else _step(f"n{i}")
        graph.add_node(f"n{i}", step, inline=inline)
        graph.add_edge(f"n{i}", f"n{i + 1}" if i + 1 < length else END)
    graph.set_entry_point("n0")
    return graph


chain10 = _chain("chain10", CHAIN_LENGTH)
chain3 = _chain("chain3", 3)
"""The latency workload of ``compare.py``: short enough that the engine's own round trips dominate."""

chain10_inline = _chain("chain10_inline", CHAIN_LENGTH, inline=True)
chain3_inline = _chain("chain3_inline", 3, inline=True)
"""The same chains with their nodes run on the worker's event loop (``inline=True``), for
``chain_throughput.py --graph`` and ``ab_latency.py --graph``; ``compare.py`` runs the plain ones."""

chain10_async = _chain("chain10_async", CHAIN_LENGTH, is_async=True)
chain3_async = _chain("chain3_async", 3, is_async=True)
"""The same chains with ``async def`` nodes, which run on the worker's event loop as a coroutine each."""


async def _sleep_one_second(state):
    await asyncio.sleep(1.0)
    return {"slept": True}


sleep1 = Graph("sleep1")
"""One async node that waits 1 s: ``compare.py``'s many_waiting runs 10,000 of these at once."""
sleep1.add_node("wait", _sleep_one_second)
sleep1.add_edge("wait", END)
sleep1.set_entry_point("wait")


SOAK_LENGTH = 8
"""Nodes in ``soak_chain``; a run that completes correctly ends with ``counter == SOAK_LENGTH``."""


def _sleepy_step(name: str):
    async def step(state):
        await asyncio.sleep(random.uniform(0.05, 0.3))
        return {"counter": state["counter"] + 1, "visited": [*state["visited"], name]}

    step.__name__ = name
    return step


soak_chain = Graph("soak_chain")
for i in range(SOAK_LENGTH):
    soak_chain.add_node(f"s{i}", _sleepy_step(f"s{i}"))
    soak_chain.add_edge(f"s{i}", f"s{i + 1}" if i + 1 < SOAK_LENGTH else END)
soak_chain.set_entry_point("s0")


FAN_BRANCHES = 8


def burn(iterations: int) -> int:
    """Pure-Python CPU work that holds the GIL: only separate processes run it in parallel."""
    total = 0
    for i in range(iterations):
        total = (total + i * i) % 1_000_003
    return total


def _burning_branch(name: str):
    def branch(state):
        return {"values": [burn(state["iterations"])]}

    branch.__name__ = name
    return branch


def _join(state):
    return {"total": sum(state["values"])}


fan8 = Graph("fan8", reducers={"values": "append"})
fan8.add_node("split", lambda state: None)
for i in range(FAN_BRANCHES):
    fan8.add_node(f"b{i}", _burning_branch(f"b{i}"))
    fan8.add_edge("split", f"b{i}")
fan8.add_node("join", _join)
fan8.add_edge([f"b{i}" for i in range(FAN_BRANCHES)], "join")
fan8.add_edge("join", END)
fan8.set_entry_point("split")
