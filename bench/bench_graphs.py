"""Graphs for the benchmarks (served with ``--graphs bench_graphs`` from this folder)."""

from __future__ import annotations

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
