"""Graphs the end-to-end tests serve (``awe ... --graphs sample_graphs``, started in this folder)."""

from __future__ import annotations

import asyncio
import os
import time

from awe import END, Graph


# -- counter_loop: a conditional edge that loops back until a target is reached ----------


def increment(state):
    return {"count": state.get("count", 0) + 1, "trace": [*state.get("trace", []), os.getpid()]}


def enough(state):
    return "done" if state["count"] >= state["target"] else "again"


counter_loop = Graph("counter_loop")
counter_loop.add_node("increment", increment)
counter_loop.add_conditional_edge("increment", enough, {"again": "increment", "done": END})
counter_loop.set_entry_point("increment")


# -- failing: the second node raises -------------------------------------------------------


def prepare(state):
    state["prepared"] = True  # in-place mutation is a delta too


def explode(state):
    raise ValueError(f"cannot handle {state.get('payload')!r}")


failing = Graph("failing")
failing.add_node("prepare", prepare)
failing.add_node("explode", explode)
failing.add_edge("prepare", "explode")
failing.add_edge("explode", END)
failing.set_entry_point("prepare")


# -- slow_pair: two async nodes that wait, so runs overlap on the workers -------------------


async def wait_a(state, ctx):
    await asyncio.sleep(state.get("delay", 0.05))
    return {"a_worker": ctx.worker_id}


async def wait_b(state, ctx):
    await asyncio.sleep(state.get("delay", 0.05))
    return {"b_worker": ctx.worker_id}


slow_pair = Graph("slow_pair")
slow_pair.add_node("wait_a", wait_a)
slow_pair.add_node("wait_b", wait_b)
slow_pair.add_edge("wait_a", "wait_b")
slow_pair.add_edge("wait_b", END)
slow_pair.set_entry_point("wait_a")


# -- chatty: a node that logs through ctx.log, and takes a while ---------------------------


def chatty_work(state, ctx):
    for i in range(state.get("lines", 3)):
        ctx.log.info("progress", item=i, **({"pad": "x" * state["pad"]} if "pad" in state else {}))
        time.sleep(state.get("pause", 0.0))
    return {"logged": state.get("lines", 3)}


def chatty_done(state):
    return {"done": True}


chatty = Graph("chatty")
chatty.add_node("work", chatty_work)
chatty.add_node("finish", chatty_done)
chatty.add_edge("work", "finish")
chatty.add_edge("finish", END)
chatty.set_entry_point("work")
