"""Graphs the limit tests serve (with ``sample_graphs``): a node that makes the state as large as asked."""

from __future__ import annotations

from awe import END, Graph


def pad(state):
    return {"pad": "x" * state["size"]}


grow = Graph("grow")
grow.add_node("pad", pad)
grow.add_edge("pad", END)
grow.set_entry_point("pad")
