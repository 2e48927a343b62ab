"""A Mermaid flowchart of any compiled graph, for ``GET`` endpoints and documentation.

Paste the text into any Mermaid renderer (GitHub renders fenced ``mermaid`` blocks). Nodes get
generated ids (``n0``, ``n1``...), so a node's name is only ever label text, where every character
outside a small safe set is written as a Mermaid entity code (``#34;`` for ``"``): a name or a
condition cannot end the label, start a new statement or inject HTML.
"""

from __future__ import annotations

import re

from awe.graph.compiled import END, CompiledGraph

__all__ = ["mermaid"]

_UNSAFE = re.compile(r"[^A-Za-z0-9 _.,:=!?()\[\]'+\-*/]")

START_ID = "__start__"
END_ID = "__end__"


def mermaid(graph: CompiledGraph) -> str:
    """The flowchart text: START, nodes, edges, conditional edges (dotted, labelled), joins and END.

    A conditional edge is labelled with its branch key: for a JSON graph that is the condition
    itself (``else`` for the fallback), for a Python graph the key its router returns. A join is a
    circle that its sources lead into and that leads to its target, since it waits for all of them.
    """
    ids = {name: f"n{i}" for i, name in enumerate(graph.nodes)}
    ids[END] = END_ID
    lines = ["flowchart TD", f'    {START_ID}(["START"])']
    lines += [f'    {ids[name]}["{_label(name)}"]' for name in graph.nodes]
    lines += [f'    {END_ID}(["END"])', f"    {START_ID} --> {ids[graph.entry]}"]
    for source, targets in graph.edges.items():
        lines += [f"    {ids[source]} --> {ids[target]}" for target in targets]
    for source, cond in graph.routers.items():
        lines += [f'    {ids[source]} -.->|"{_label(key)}"| {ids[target]}' for key, target in cond.branches.items()]
    for i, join in enumerate(graph.joins):
        join_id = f"join{i}"
        lines.append(f'    {join_id}(("all of"))')
        lines += [f"    {ids[source]} --> {join_id}" for source in join.sources]
        lines.append(f"    {join_id} --> {ids[join.target]}")
    return "\n".join(lines) + "\n"


def _label(text: str) -> str:
    """``text`` safe inside a quoted Mermaid label: unsafe characters become ``#<code>;`` entities."""
    return _UNSAFE.sub(lambda m: f"#{ord(m.group())};", text)
