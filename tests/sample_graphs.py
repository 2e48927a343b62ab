"""Graphs the end-to-end tests serve (``awe ... --graphs sample_graphs``, started in this folder)."""

from __future__ import annotations

import asyncio
import itertools
import os
import time

from awe import END, Graph, RetryPolicy, Send, tool

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


# -- retries: flaky nodes with a retry policy -----------------------------------------------


FAST_RETRY = RetryPolicy(max_attempts=3, backoff=0.05, jitter=False)


def flaky_call(state, ctx):
    """Fails on its first ``fail_times`` attempts with a retryable error, then succeeds."""
    if ctx.attempt <= state.get("fail_times", 2):
        raise ConnectionError(f"upstream unavailable (attempt {ctx.attempt})")
    return {"answer": 42, "succeeded_on": ctx.attempt}


def wrong_input(state):
    raise KeyError("missing_field")  # a programming error: never retried


retrying = Graph("retrying")
retrying.add_node("call", flaky_call, retry=FAST_RETRY)
retrying.add_edge("call", END)
retrying.set_entry_point("call")

not_retried = Graph("not_retried")
not_retried.add_node("parse", wrong_input, retry=FAST_RETRY)
not_retried.add_edge("parse", END)
not_retried.set_entry_point("parse")


# -- slow: one long async node, to cancel or to kill its worker under ------------------------


async def slow_node(state, ctx):
    ctx.log.info("slow_started", worker=ctx.worker_id, attempt=ctx.attempt)
    await asyncio.sleep(state.get("seconds", 30))
    return {"slept": state.get("seconds", 30), "finished_by": ctx.worker_id}


def after_slow(state):
    return {"after": True}


slow = Graph("slow")
slow.add_node("sleep", slow_node)
slow.add_node("after", after_slow)
slow.add_edge("sleep", "after")
slow.add_edge("after", END)
slow.set_entry_point("sleep")


# -- timeouts: an async node past its deadline, a sync node that cannot be interrupted -------

TIMEOUT_RETRY = RetryPolicy(max_attempts=2, backoff=0.05, jitter=False)


async def oversleep(state):
    await asyncio.sleep(state.get("seconds", 30))
    return {"woke": True}


def hang_until_released(state):
    """A sync node stuck until the test creates ``release_file`` (Python cannot interrupt it)."""
    deadline = time.monotonic() + 60
    while not os.path.exists(state["release_file"]) and time.monotonic() < deadline:
        time.sleep(0.02)
    return {"released": True}


timed_out = Graph("timed_out")
timed_out.add_node("oversleep", oversleep, retry=TIMEOUT_RETRY, timeout=0.3)
timed_out.add_edge("oversleep", END)
timed_out.set_entry_point("oversleep")

hung = Graph("hung")
hung.add_node("hang", hang_until_released, retry=TIMEOUT_RETRY, timeout=0.3)
hung.add_edge("hang", END)
hung.set_entry_point("hang")


# -- witnessed: each execution of a slow node leaves a line in a file, to count side effects ----


def _witness(state, ctx, what: str) -> None:
    with open(state["witness_file"], "a") as f:
        f.write(f"{what} {ctx.step}:{ctx.attempt}:{ctx.worker_id}\n")


async def witnessed_work(state, ctx):
    _witness(state, ctx, "start")
    await asyncio.sleep(state.get("seconds", 2.0))
    _witness(state, ctx, "end")
    return {"worked": True}


witnessed = Graph("witnessed")
witnessed.add_node("work", witnessed_work)
witnessed.add_node("after", after_slow)
witnessed.add_edge("work", "after")
witnessed.add_edge("after", END)
witnessed.set_entry_point("work")


# -- parallel branches -------------------------------------------------------------------------


def burn(iterations: int) -> int:
    """Pure-Python CPU work that holds the GIL: only separate processes run it in parallel."""
    total = 0
    for i in range(iterations):
        total = (total + i * i) % 1_000_003
    return total


def _cpu_branch(name: str):
    def work(state, ctx):
        return {"parts": [{"branch": name, "worker": ctx.worker_id, "value": burn(state["iterations"])}]}

    work.__name__ = name
    return work


def start(state):
    return None


def total(state):
    return {"total": sum(p["value"] for p in state["parts"]), "joined": sorted(p["branch"] for p in state["parts"])}


CPU_BRANCHES = ["cpu_a", "cpu_b", "cpu_c", "cpu_d"]

fan_cpu = Graph("fan_cpu", reducers={"parts": "append"})
fan_cpu.add_node("start", start)
for name in CPU_BRANCHES:
    fan_cpu.add_node(name, _cpu_branch(name))
    fan_cpu.add_edge("start", name)
fan_cpu.add_node("total", total)
fan_cpu.add_edge(CPU_BRANCHES, "total")
fan_cpu.add_edge("total", END)
fan_cpu.set_entry_point("start")

chain_cpu = Graph("chain_cpu", reducers={"parts": "append"})  # the same work, one branch after another
for name in CPU_BRANCHES:
    chain_cpu.add_node(name, _cpu_branch(name))
for first, second in itertools.pairwise(CPU_BRANCHES):
    chain_cpu.add_edge(first, second)
chain_cpu.add_node("total", total)
chain_cpu.add_edge(CPU_BRANCHES[-1], "total")
chain_cpu.add_edge("total", END)
chain_cpu.set_entry_point(CPU_BRANCHES[0])


# fan_reduce: three branches finishing in an order the run chooses, through three reducers


def _reducing_branch(name: str, weight: int):
    async def branch(state):
        await asyncio.sleep(state["delays"][name])
        return {"log": [name], "total": weight, "by_branch": {name: weight}, "finished": [name]}

    branch.__name__ = name
    return branch


def keep_order(current, update):
    """A custom reducer: remembers the order the updates were applied in."""
    return [*(current or []), *update]


fan_reduce = Graph(
    "fan_reduce", reducers={"log": "append", "total": "add", "by_branch": "merge", "finished": keep_order}
)
fan_reduce.add_node("start", start)
for name, weight in (("left", 1), ("middle", 10), ("right", 100)):
    fan_reduce.add_node(name, _reducing_branch(name, weight))
    fan_reduce.add_edge("start", name)
    fan_reduce.add_edge(name, END)
fan_reduce.set_entry_point("start")


# fan_conflict: two branches write a key that has no reducer


def write_x(state):
    return {"result": "from x"}


def write_y(state):
    return {"result": "from y"}


fan_conflict = Graph("fan_conflict")
fan_conflict.add_node("start", start).add_node("x", write_x).add_node("y", write_y)
fan_conflict.add_edge("start", "x").add_edge("start", "y").add_edge("x", END).add_edge("y", END)
fan_conflict.set_entry_point("start")


# map_square: a router maps a node over a list known only at run time


def fan_out_items(state):
    return [Send("square", {"item": item}) for item in state["items"]]


def square(item_input, ctx):
    return {"results": [item_input["item"] ** 2], "workers": [ctx.worker_id]}


def collect(state):
    return {"count": len(state["results"])}


map_square = Graph("map_square", reducers={"results": "append", "workers": "append"})
map_square.add_node("plan", start).add_node("square", square).add_node("collect", collect)
map_square.add_conditional_edge("plan", fan_out_items, ["square"])
map_square.add_edge("square", "collect").add_edge("collect", END)
map_square.set_entry_point("plan")


# fan_witnessed: branches that leave a line per execution; one of them is slow


async def _witnessed_branch(state, ctx):
    _witness(state, ctx, f"start {ctx.branch}")
    await asyncio.sleep(state["seconds"].get(ctx.branch, 0.05))
    return {"done": [ctx.branch]}


fan_witnessed = Graph("fan_witnessed", reducers={"done": "append"})
fan_witnessed.add_node("start", start)
for name in ("quick_a", "quick_b", "slow"):
    fan_witnessed.add_node(name, _witnessed_branch)
    fan_witnessed.add_edge("start", name)
fan_witnessed.add_node("after", after_slow)
fan_witnessed.add_edge(["quick_a", "quick_b", "slow"], "after")
fan_witnessed.add_edge("after", END)
fan_witnessed.set_entry_point("start")


# fan_failing: one branch fails for good while another is still working


async def slow_ok(state):
    await asyncio.sleep(state.get("seconds", 0.5))
    return {"ok": True}


def broken(state):
    raise RuntimeError("the broken branch broke")


fan_failing = Graph("fan_failing")
fan_failing.add_node("start", start).add_node("slow_ok", slow_ok).add_node("broken", broken)
fan_failing.add_edge("start", "slow_ok").add_edge("start", "broken")
fan_failing.add_edge("slow_ok", END).add_edge("broken", END)
fan_failing.set_entry_point("start")


# -- values the engine cannot store or send ---------------------------------------

BAD_VALUES = {
    "uint64_plus_one": lambda: 2**64,
    "huge_integer": lambda: 10**4301,
    "lone_surrogate": lambda: "text \ud800 more",
    "nan": lambda: float("nan"),
    "infinity": lambda: float("inf"),
    "deep": lambda: _deep(100_000),
}


def _deep(levels: int) -> list[object]:
    value: list[object] = []
    for _ in range(levels):
        value = [value]
    return value


def emit_bad_value(state):
    """Returns the value named by ``state['kind']``: the node must fail, naming it, and nothing else."""
    return {"out": BAD_VALUES[state["kind"]]()}


def route_bad_send(state):
    return [Send("emit_bad_value", {"kind": state["kind"], "payload": BAD_VALUES[state["kind"]]()})]


bad_output = Graph("bad_output")
bad_output.add_node("emit_bad_value", emit_bad_value)
bad_output.add_edge("emit_bad_value", END)
bad_output.set_entry_point("emit_bad_value")


# -- a person in the loop ------------------------------------------------------------------


def ask_for_approval(state, ctx):
    """Asks a person; runs again from the start once they answer, and ctx.interrupt returns the answer."""
    answer = ctx.interrupt({"question": f"ship {state['release']}?"})
    return {"approved": answer, "asked_attempt": ctx.attempt}


def ship(state):
    return {"shipped": bool(state["approved"])}


approval = Graph("approval")
approval.add_node("ask", ask_for_approval)
approval.add_node("ship", ship)
approval.add_edge("ask", "ship")
approval.add_edge("ship", END)
approval.set_entry_point("ask")


def divide(state):
    return {"result": 10 / state["divisor"]}


fragile = Graph("fragile")
fragile.add_node("divide", divide)
fragile.add_edge("divide", END)
fragile.set_entry_point("divide")


def add_step(state):
    """Adds ``step_size`` to ``total`` and notes which pass it was: a fork from step k skips passes 1..k."""
    passes = [*state.get("passes", []), len(state.get("passes", [])) + 1]
    return {"total": state.get("total", 0) + state.get("step_size", 1), "passes": passes}


def four_passes(state):
    return "done" if len(state["passes"]) >= 4 else "again"


accumulate = Graph("accumulate")
accumulate.add_node("add", add_step)
accumulate.add_conditional_edge("add", four_passes, {"again": "add", "done": END})
accumulate.set_entry_point("add")


def double(state):
    return {"n": state["n"] * 2}


reviewed_sum = Graph("reviewed_sum", interrupt_after=["double"])  # a person checks each doubling
reviewed_sum.add_node("double", double)
reviewed_sum.add_node("double_again", double)
reviewed_sum.add_edge("double", "double_again")
reviewed_sum.add_edge("double_again", END)
reviewed_sum.set_entry_point("double")


@tool("hitl.mark")
def mark(state, *, key):
    """Sets ``state[key]`` to true."""
    return {key: True}


# -- capacity: waiting async nodes, blocking sync nodes ------------------------------------------


async def wait_a_while(state):
    await asyncio.sleep(state["seconds"])
    return {"waited": state["seconds"]}


def block_a_while(state):
    time.sleep(state["seconds"])
    return {"blocked": state["seconds"]}


waits = Graph("waits")
waits.add_node("wait", wait_a_while)
waits.add_edge("wait", END)
waits.set_entry_point("wait")

blocks = Graph("blocks")
blocks.add_node("block", block_a_while)
blocks.add_edge("block", END)
blocks.set_entry_point("block")


def count_inline(state):
    return {"count": state["count"] + 1}


inline_count = Graph("inline_count")
"""Three inline nodes: they run on the worker's event loop and hold none of its threads."""
for _name, _next in (("i1", "i2"), ("i2", "i3"), ("i3", END)):
    inline_count.add_node(_name, count_inline, inline=True)
    inline_count.add_edge(_name, _next)
inline_count.set_entry_point("i1")
