"""Graphs the web page's browser tests run (``--graphs web_graphs``): slow enough to watch.

``paced_review`` has what the page must draw and light: a fan-out (``plan`` to ``style`` and
``security``, run as parallel branches of one step), a join (``summarise`` after both), and a router
that loops back to ``plan`` until ``rounds`` are done. Each node waits ``state["pace"]`` seconds,
so the page sees it running before it sees it done, and logs the state's ``note``, so whatever a
user put there reaches the event log too. ``gated_review`` is the same behind a pause, so that a
test can open the run's page before its first node runs.
"""

from __future__ import annotations

import asyncio

from awe import END, Graph, tool


async def plan(state, ctx):
    await asyncio.sleep(state["pace"])
    ctx.log.info("planning", note=state.get("note"))
    return {"round": state.get("round", 0) + 1}


def checker(kind):
    async def check(state):
        await asyncio.sleep(state["pace"])
        return {"findings": [f"{kind} round {state['round']}"]}

    check.__name__ = kind
    return check


async def summarise(state):
    await asyncio.sleep(state["pace"])
    return {"summary": f"{len(state['findings'])} findings after {state['round']} rounds"}


def again(state):
    return "done" if state["round"] >= state.get("rounds", 1) else "again"


async def intake(state):
    await asyncio.sleep(state["pace"])
    return {"round": 0}


def review(name, *, gated):
    """The review; ``gated``, it starts with ``intake`` and pauses before it, until someone resumes it."""
    graph = Graph(name, reducers={"findings": "append"}, interrupt_before=["intake"] if gated else [])
    graph.add_node("plan", plan)
    for kind in ("style", "security"):
        graph.add_node(kind, checker(kind))
        graph.add_edge("plan", kind)
    graph.add_node("summarise", summarise)
    graph.add_edge(["style", "security"], "summarise")
    graph.add_conditional_edge("summarise", again, {"done": END, "again": "plan"})
    if gated:
        graph.add_node("intake", intake)
        graph.add_edge("intake", "plan")
    return graph.set_entry_point("intake" if gated else "plan")


paced_review = review("paced_review", gated=False)
gated_review = review("gated_review", gated=True)


def ask(state, ctx):
    """Pauses the run with a question; once resumed with an answer, runs again and returns it."""
    answer = ctx.interrupt({"question": f"ship {state['release']}?"})
    return {"approved": answer}


asking = Graph("asking")
asking.add_node("ask", ask)
asking.add_edge("ask", END)
asking.set_entry_point("ask")


def tick(state):
    return {"count": state.get("count", 0) + 1}


def until_target(state):
    return "done" if state["count"] >= state["target"] else "again"


ticker = Graph("ticker")
"""One node looping ``target`` times: a run of many steps, and many quick runs, for the page to keep up with."""
ticker.add_node("tick", tick)
ticker.add_conditional_edge("tick", until_target, {"done": END, "again": "tick"})
ticker.set_entry_point("tick")


@tool("web.stamp", parameters={"type": "object", "properties": {"key": {"type": "string"}}})
def stamp(state, *, key="stamped"):
    """Sets ``state[key]`` to true: a tool for the JSON graphs the page draws."""
    return {key: True}
