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


chain10 = Graph("chain10")
for i in range(CHAIN_LENGTH):
    chain10.add_node(f"n{i}", _step(f"n{i}"))
    chain10.add_edge(f"n{i}", f"n{i + 1}" if i + 1 < CHAIN_LENGTH else END)
chain10.set_entry_point("n0")


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
