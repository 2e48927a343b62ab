"""Running one node in-process: state deltas, sync/async nodes, routers and failures."""

from __future__ import annotations

import asyncio
import enum
import threading

import pytest

from awe.graph import END, CompiledGraph, Context, Graph, RetryPolicy, Send
from awe.transport.messages import Job, JobDone, JobFailed, decode
from awe.workers.executor import NodeOutputError, check_json, run_job, state_delta
from awe.workers.node_threads import NodeThreads

# -- state_delta ----------------------------------------------------------------------


def test_returned_dict_is_the_delta():
    before = {"a": 1, "b": [1, 2]}
    delta, removed = state_delta(before, dict(before), {"c": 3, "a": 2}, "n")
    assert delta == {"c": 3, "a": 2}
    assert removed == []


def test_none_and_empty_dict_mean_no_change():
    before = {"a": 1}
    assert state_delta(before, {"a": 1}, None, "n") == ({}, [])
    assert state_delta(before, {"a": 1}, {}, "n") == ({}, [])


def test_in_place_mutation_is_detected():
    before = {"a": 1, "nested": {"l": [1]}, "same": "x"}
    after = {"a": 5, "nested": {"l": [1, 2]}, "same": "x", "new": None}
    delta, removed = state_delta(before, after, None, "n")
    assert delta == {"a": 5, "nested": {"l": [1, 2]}, "new": None}
    assert "same" not in delta
    assert removed == []


def test_in_place_mutation_and_returned_updates_combine():
    before = {"a": 1, "b": 2, "c": 3}
    after = {"a": 10, "b": 2, "c": 3}
    delta, removed = state_delta(before, after, {"b": 20}, "n")
    assert delta == {"a": 10, "b": 20}
    assert removed == []


def test_returned_value_wins_over_in_place_mutation():
    delta, _ = state_delta({"a": 1}, {"a": 2}, {"a": 3}, "n")
    assert delta == {"a": 3}


def test_deleted_keys_are_reported_in_removed():
    before = {"a": 1, "b": 2, "c": 3}
    after = {"b": 2}
    delta, removed = state_delta(before, after, None, "n")
    assert delta == {}
    assert removed == ["a", "c"]


def test_deleted_then_returned_key_is_not_removed():
    delta, removed = state_delta({"a": 1, "b": 2}, {}, {"a": 9}, "n")
    assert delta == {"a": 9}
    assert removed == ["b"]


@pytest.mark.parametrize("returned", ["text", ["a"], 3, ("k", 1)], ids=["str", "list", "int", "tuple"])
def test_non_dict_return_is_rejected_naming_the_node(returned):
    with pytest.raises(NodeOutputError) as info:
        state_delta({}, {}, returned, "my_node")
    assert "'my_node'" in str(info.value)
    assert type(returned).__name__ in str(info.value)


def test_non_string_top_level_key_is_rejected():
    with pytest.raises(NodeOutputError, match=r"node 'n' returned the key 1"):
        state_delta({}, {}, {1: "x"}, "n")


class Opaque:
    pass


def _nested(levels: int) -> list[object]:
    value: list[object] = []
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    "value, path, what",
    [
        (b"raw", "state['v']", "bytes"),
        ({1, 2}, "state['v']", "set"),
        (float("nan"), "state['v']", "nan"),
        (float("inf"), "state['v']", "inf"),
        (Opaque(), "state['v']", "Opaque"),
        ({1: "one"}, "state['v']", "key 1"),
        ({"ok": [1, {"deep": b"x"}]}, "state['v']['ok'][1]['deep']", "bytes"),
        ([1, 2, {3}], "state['v'][2]", "set"),
        (2**64, "state['v']", "outside 64 bits"),
        (-(2**63) - 1, "state['v']", "outside 64 bits"),
        (10**4301, "state['v']", "thousands of digits"),
        ("ok \ud800", "state['v']", "lone surrogate"),
        ({"k\udc80": 1}, "state['v'] key", "lone surrogate"),
    ],
    ids=[
        "bytes",
        "set",
        "nan",
        "inf",
        "object",
        "int-key",
        "nested-bytes",
        "set-in-list",
        "uint64+1",
        "int64-1",
        "4301-digits",
        "surrogate",
        "surrogate-key",
    ],
)
def test_non_json_values_are_rejected_naming_the_path(value, path, what):
    with pytest.raises(NodeOutputError) as info:
        state_delta({}, {}, {"v": value}, "n")
    message = str(info.value)
    assert message.startswith(path + " ")
    assert what in message


def test_a_value_nested_too_deeply_is_rejected_with_a_shortened_path():
    with pytest.raises(NodeOutputError) as info:
        state_delta({}, {}, {"v": _nested(150)}, "n")
    message = str(info.value)
    assert message.startswith("state['v'][0][0]") and "nested deeper than 100 levels" in message
    assert len(message) < 200


def test_non_json_value_set_in_place_is_rejected():
    with pytest.raises(NodeOutputError, match=r"state\['v'\] is of type set"):
        state_delta({}, {"v": {1}}, None, "n")


def test_json_values_are_accepted():
    value = {
        "s": "x é 中",
        "i": -3,
        "f": 1.5,
        "b": False,
        "n": None,
        "l": [1, [2, {"k": "v"}]],
        "t": (1, 2),
        "big": 2**64 - 1,
        "small": -(2**63),
        "deep": _nested(95),
    }
    check_json(value, "state")  # does not raise
    delta, _ = state_delta({}, {}, {"v": value}, "n")
    assert delta == {"v": value}


def test_in_place_type_change_between_equal_values_is_reported():
    delta, _ = state_delta({"flag": 0, "n": 1}, {"flag": False, "n": 1.0}, None, "n")
    assert delta == {"flag": False, "n": 1.0}


# -- run_job ---------------------------------------------------------------------------


class RecordingLog:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict]] = []

    def info(self, event, **fields):
        self.lines.append(("info", event, fields))

    def debug(self, event, **fields):
        self.lines.append(("debug", event, fields))


@pytest.fixture(scope="module")
def threads():
    """The worker's own node threads (two of them)."""
    pool = NodeThreads(2, name="awe-test-node")
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def test_node_threads_cancel_what_waits_in_line_when_shut_down():
    pool = NodeThreads(1, name="awe-test-line")
    started, release = threading.Event(), threading.Event()

    def hold() -> bool:
        started.set()
        return release.wait(5)

    running = pool.submit(hold)
    assert started.wait(5)
    waiting = pool.submit(lambda: "never")
    pool.shutdown(wait=False, cancel_futures=True)
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(lambda: "late")
    release.set()
    pool.shutdown(wait=True)  # a second call joins the thread
    assert running.result(timeout=5) is True
    assert waiting.cancelled()


def single(fn, name: str = "n", router=None, branches=None, reducers=None) -> CompiledGraph:
    g = Graph("g", reducers=reducers).add_node(name, fn)
    if router is None:
        g.add_edge(name, END)
    else:
        g.add_conditional_edge(name, router, branches or {"done": END, "again": name})
    return g.set_entry_point(name).compile()


def make_job(state: dict, node: str = "n", attempt: int = 1, *, branch: str = "", from_send: bool = False) -> Job:
    return Job(
        job_id=f"run-7:3:{branch or node}:{attempt}",
        run_id="run-7",
        graph_id="g",
        node=node,
        step=3,
        attempt=attempt,
        state=state,
        branch=branch,
        from_send=from_send,
    )


def make_ctx(node: str = "n", attempt: int = 1, log=None, branch: str = "") -> Context:
    return Context(
        run_id="run-7",
        graph_id="g",
        node=node,
        step=3,
        attempt=attempt,
        worker_id="w-9",
        log=log or RecordingLog(),
        branch=branch,
    )


async def run(graph, state, threads, *, node="n", attempt=1, ctx=None):
    return await run_job(graph, make_job(state, node, attempt), ctx or make_ctx(node, attempt), threads)


async def test_sync_node(threads):
    def add_one(state):
        return {"count": state["count"] + 1}

    result = await run(single(add_one), {"count": 1, "other": "x"}, threads)
    assert isinstance(result, JobDone)
    assert result.job_id == "run-7:3:n:1" and result.run_id == "run-7"
    assert result.delta == {"count": 2}
    assert result.removed == []
    assert result.route is None
    assert result.duration_ms >= 0
    assert decode(result.encode()) == result


async def test_sync_node_runs_off_the_event_loop_thread(threads):
    seen = {}

    def where(state):
        seen["thread"] = threading.get_ident()
        seen["name"] = threading.current_thread().name

    loop_thread = threading.get_ident()  # the test body runs on the loop's thread
    result = await run(single(where), {}, threads)
    assert isinstance(result, JobDone)
    assert seen["thread"] != loop_thread
    assert seen["name"].startswith("awe-test-node")


async def test_async_node_runs_on_the_loop(threads):
    seen = {}

    async def fetch(state):
        await asyncio.sleep(0)
        seen["thread"] = threading.get_ident()
        seen["loop"] = asyncio.get_running_loop()
        state["touched"] = True
        return {"fetched": state["url"].upper()}

    result = await run(single(fetch), {"url": "x"}, threads)
    assert isinstance(result, JobDone)
    assert result.delta == {"fetched": "X", "touched": True}
    assert seen["thread"] == threading.get_ident()
    assert seen["loop"] is asyncio.get_running_loop()


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_node_taking_ctx_sees_the_job(threads, is_async):
    seen = {}
    log = RecordingLog()

    def body(state, ctx):
        seen.update(run_id=ctx.run_id, node=ctx.node, attempt=ctx.attempt, step=ctx.step, worker=ctx.worker_id)
        ctx.log.info("hello", n=1)
        return {"ok": True}

    if is_async:

        async def node(state, ctx):
            return body(state, ctx)
    else:
        node = body

    result = await run(
        single(node, name="ctx_node"), {}, threads, node="ctx_node", attempt=2, ctx=make_ctx("ctx_node", 2, log)
    )
    assert isinstance(result, JobDone), getattr(result, "error", None)
    assert seen == {"run_id": "run-7", "node": "ctx_node", "attempt": 2, "step": 3, "worker": "w-9"}
    assert log.lines == [("info", "hello", {"n": 1})]
    assert result.delta == {"ok": True}


async def test_in_place_mutation_and_deletion_through_run_job(threads):
    def edit(state):
        state["items"].append(3)
        del state["tmp"]
        return {"extra": 1}

    result = await run(single(edit), {"items": [1, 2], "tmp": "x", "keep": 0}, threads)
    assert isinstance(result, JobDone)
    assert result.delta == {"items": [1, 2, 3], "extra": 1}
    assert result.removed == ["tmp"]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_node_that_raises_becomes_job_failed(threads, is_async):
    def exploding_node(state):
        raise ValueError("kaboom 42")

    async def exploding_async_node(state):
        raise ValueError("kaboom 42")

    fn = exploding_async_node if is_async else exploding_node
    result = await run(single(fn), {}, threads)
    assert isinstance(result, JobFailed)
    assert result.job_id == "run-7:3:n:1" and result.run_id == "run-7"
    assert result.error["type"] == "ValueError"
    assert result.error["message"] == "kaboom 42"
    assert isinstance(result.error["traceback"], str)
    assert fn.__name__ in result.error["traceback"]
    assert "ValueError: kaboom 42" in result.error["traceback"]
    assert decode(result.encode()) == result


async def test_base_exceptions_from_a_node_are_reported(threads):
    def leaves(state):
        raise SystemExit(3)

    result = await run(single(leaves), {}, threads)
    assert isinstance(result, JobFailed)
    assert result.error["type"] == "SystemExit"


async def test_bad_node_output_becomes_job_failed(threads):
    def returns_bytes(state):
        return {"blob": b"\x00"}

    def returns_list(state):
        return ["nope"]

    result = await run(single(returns_bytes), {}, threads)
    assert isinstance(result, JobFailed)
    assert result.error["type"] == "NodeOutputError"
    assert "state['blob']" in result.error["message"]
    result = await run(single(returns_list), {}, threads)
    assert isinstance(result, JobFailed)
    assert result.error["type"] == "NodeOutputError"
    assert "'n'" in result.error["message"]


async def test_sync_node_returning_an_awaitable_is_rejected(threads):
    class Pending:
        def __await__(self):
            return iter(())

    def sneaky(state):
        return Pending()

    result = await run(single(sneaky), {}, threads)
    assert isinstance(result, JobFailed)
    assert result.error["type"] == "NodeOutputError"
    assert "async def" in result.error["message"]


async def test_unknown_node_becomes_job_failed(threads):
    result = await run(single(lambda s: None), {}, threads, node="ghost")
    assert isinstance(result, JobFailed)
    assert result.error["type"] == "LookupError"
    assert "'ghost'" in result.error["message"]


class Route(enum.Enum):
    DONE = "done"
    AGAIN = "again"


@pytest.mark.parametrize("node_async", [False, True], ids=["sync-node", "async-node"])
@pytest.mark.parametrize("router_async", [False, True], ids=["sync-router", "async-router"])
async def test_router_sees_the_updated_state_and_its_answer_lands_in_route(threads, node_async, router_async):
    seen = {}

    def body(state):
        state["mutated"] = "yes"
        del state["gone"]
        return {"score": 90}

    async def async_body(state):
        return body(state)

    def decide(state):
        seen["state"] = dict(state)
        return "done" if state["score"] >= 80 else "again"

    async def async_decide(state):
        await asyncio.sleep(0)
        return decide(state)

    graph = single(async_body if node_async else body, router=async_decide if router_async else decide)
    result = await run(graph, {"score": 10, "gone": 1, "keep": "k"}, threads)
    assert isinstance(result, JobDone), getattr(result, "error", None)
    assert result.route == "done"
    assert seen["state"] == {"score": 90, "mutated": "yes", "keep": "k"}
    assert result.removed == ["gone"]


async def test_router_enum_answer_is_sent_as_its_value(threads):
    result = await run(single(lambda s: None, router=lambda s: Route.AGAIN), {}, threads)
    assert isinstance(result, JobDone)
    assert result.route == "again"


@pytest.mark.parametrize("answer", [2**64, "done \ud800", ["done", 2**64]], ids=["uint64+1", "surrogate", "in-a-list"])
async def test_router_answer_the_engine_cannot_send_fails_the_job_naming_it(threads, answer):
    result = await run(single(lambda s: None, router=lambda s: answer), {}, threads)
    assert isinstance(result, JobFailed)
    assert result.error["type"] == "NodeOutputError" and "the router of 'n'" in result.error["message"]


@pytest.mark.parametrize("router_async", [False, True], ids=["sync-router", "async-router"])
@pytest.mark.parametrize(
    "answer", [{"k": "done"}, 1.5, object(), ["done", 1.5]], ids=["dict", "float", "object", "list-with-a-float"]
)
async def test_router_returning_an_unsupported_object_fails_the_job(threads, router_async, answer):
    def decide(state):
        return answer

    async def async_decide(state):
        return answer

    result = await run(single(lambda s: {"x": 1}, router=async_decide if router_async else decide), {}, threads)
    assert isinstance(result, JobFailed)
    assert result.error["type"] == "NodeOutputError"
    assert "router of node 'n'" in result.error["message"]
    assert type(answer).__name__ in result.error["message"]


async def test_router_that_raises_fails_the_job(threads):
    def broken_router(state):
        raise KeyError("missing")

    result = await run(single(lambda s: None, router=broken_router), {}, threads)
    assert isinstance(result, JobFailed)
    assert result.error["type"] == "KeyError"
    assert "broken_router" in result.error["traceback"]


async def test_node_without_router_has_no_route_even_if_it_returns_one(threads):
    result = await run(single(lambda s: {"route": "x"}), {}, threads)
    assert isinstance(result, JobDone)
    assert result.route is None
    assert result.delta == {"route": "x"}


# -- parallel branches: Sends, reducers, wire routes ---------------------------------------


def test_context_branch_defaults_to_empty():
    ctx = Context(run_id="r", graph_id="g", node="n", step=1, attempt=1, worker_id="w", log=None)
    assert ctx.branch == ""


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_a_send_job_runs_on_its_payload_and_only_its_returned_dict_counts(threads, is_async):
    seen = {}

    def body(state):
        seen["state"] = dict(state)
        state["item"] = "changed in place"
        state["new"] = 1
        del state["drop"]
        return {"results": [state["item"]]}

    async def async_body(state):
        return body(state)

    payload = {"item": "x", "drop": True}
    job = make_job(payload, branch="n[0]", from_send=True)
    result = await run_job(single(async_body if is_async else body), job, make_ctx(branch="n[0]"), threads)
    assert isinstance(result, JobDone), getattr(result, "error", None)
    assert seen["state"] == {"item": "x", "drop": True}
    assert result.delta == {"results": ["changed in place"]}
    assert result.removed == []


async def test_a_send_job_that_returns_nothing_updates_nothing(threads):
    def edit(state):
        state["item"] = "y"

    result = await run_job(single(edit), make_job({"item": "x"}, from_send=True), make_ctx(), threads)
    assert isinstance(result, JobDone)
    assert result.delta == {}
    assert result.removed == []


async def test_a_send_jobs_returned_dict_is_still_checked(threads):
    result = await run_job(single(lambda s: {"blob": b"x"}), make_job({}, from_send=True), make_ctx(), threads)
    assert isinstance(result, JobFailed)
    assert result.error["type"] == "NodeOutputError"
    assert "state['blob']" in result.error["message"]
    result = await run_job(single(lambda s: ["x"]), make_job({}, from_send=True), make_ctx(), threads)
    assert isinstance(result, JobFailed)
    assert "'n'" in result.error["message"]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_an_in_place_change_of_a_reducer_key_fails_the_job(threads, is_async):
    def body(state):
        state["items"].append(2)
        state["plain"] = "fine"

    async def async_body(state):
        return body(state)

    graph = (
        Graph("g", reducers={"items": "append"})
        .add_node("n", async_body if is_async else body, retry=RetryPolicy(max_attempts=3))
        .add_edge("n", END)
        .set_entry_point("n")
        .compile()
    )
    result = await run(graph, {"items": [1]}, threads)
    assert isinstance(result, JobFailed)
    assert result.error["type"] == "NodeOutputError"
    message = result.error["message"]
    assert "node 'n'" in message
    assert "'items'" in message
    assert "(append)" in message
    assert "return its update instead" in message
    assert not result.retryable  # retrying the same code cannot help


async def test_a_reducer_keys_update_is_returned(threads):
    def body(state):
        state["plain"] = "in place is fine here"
        return {"items": [2]}

    result = await run(single(body, reducers={"items": "append"}), {"items": [1]}, threads)
    assert isinstance(result, JobDone), getattr(result, "error", None)
    assert result.delta == {"items": [2], "plain": "in place is fine here"}  # the update, not the folded value


async def test_a_reducer_key_changed_in_place_and_returned_sends_the_returned_update(threads):
    def body(state):
        state["items"].append("in place")
        return {"items": ["returned"]}

    result = await run(single(body, reducers={"items": "append"}), {"items": [1]}, threads)
    assert isinstance(result, JobDone), getattr(result, "error", None)
    assert result.delta == {"items": ["returned"]}


async def test_a_send_job_may_change_a_reducer_key_of_its_payload_in_place(threads):
    def body(state):
        state["items"].append(2)  # the payload is the node's input, not the run's state
        return {"items": [len(state["items"])]}

    job = make_job({"items": [1]}, from_send=True)
    result = await run_job(single(body, reducers={"items": "append"}), job, make_ctx(), threads)
    assert isinstance(result, JobDone), getattr(result, "error", None)
    assert result.delta == {"items": [2]}


@pytest.mark.parametrize("node_async", [False, True], ids=["sync-node", "async-node"])
@pytest.mark.parametrize("router_async", [False, True], ids=["sync-router", "async-router"])
async def test_the_router_sees_the_state_after_the_reducers(threads, node_async, router_async):
    seen = {}

    def body(state):
        return {"items": [2], "total": 5, "plain": "new"}

    async def async_body(state):
        return body(state)

    def decide(state):
        seen["state"] = dict(state)
        return "done"

    async def async_decide(state):
        return decide(state)

    graph = single(
        async_body if node_async else body,
        router=async_decide if router_async else decide,
        reducers={"items": "append", "total": "add"},
    )
    result = await run(graph, {"items": [1], "total": 1, "plain": "old"}, threads)
    assert isinstance(result, JobDone), getattr(result, "error", None)
    assert seen["state"] == {"items": [1, 2], "total": 6, "plain": "new"}
    assert result.delta == {"items": [2], "total": 5, "plain": "new"}
    assert result.route == "done"


async def test_a_reducer_that_fails_on_the_routers_view_fails_the_job(threads):
    graph = single(lambda s: {"total": "three"}, router=lambda s: "done", reducers={"total": "add"})
    result = await run(graph, {"total": 1}, threads)
    assert isinstance(result, JobFailed)
    assert result.error["type"] == "ReducerFailed"
    assert "'total'" in result.error["message"]


@pytest.mark.parametrize("router_async", [False, True], ids=["sync-router", "async-router"])
@pytest.mark.parametrize(
    "answer, wire",
    [
        (["done", "again"], ["done", "again"]),
        (("again", Route.DONE), ["again", "done"]),
        (Send("n", {"item": 1}), [{"send": "n", "payload": {"item": 1}}]),
        (
            [Send("n", {"i": 0}), Send("n", {"i": 1})],
            [{"send": "n", "payload": {"i": 0}}, {"send": "n", "payload": {"i": 1}}],
        ),
        (["done", Send("n", {"i": [1, {"k": None}]})], ["done", {"send": "n", "payload": {"i": [1, {"k": None}]}}]),
        ([], []),
    ],
    ids=["keys", "tuple-with-enum", "one-send", "sends", "key-and-send", "empty"],
)
async def test_router_answers_are_sent_in_wire_form(threads, router_async, answer, wire):
    def decide(state):
        return answer

    async def async_decide(state):
        return answer

    result = await run(single(lambda s: None, router=async_decide if router_async else decide), {}, threads)
    assert isinstance(result, JobDone), getattr(result, "error", None)
    assert result.route == wire
    assert decode(result.encode()) == result


@pytest.mark.parametrize("router_async", [False, True], ids=["sync-router", "async-router"])
@pytest.mark.parametrize("answer", [Send("n", [1]), ["done", Send("n", "text")]], ids=["alone", "in-a-list"])
async def test_a_send_whose_payload_is_not_a_dict_fails_the_job(threads, router_async, answer):
    def decide(state):
        return answer

    async def async_decide(state):
        return answer

    result = await run(single(lambda s: None, router=async_decide if router_async else decide), {}, threads)
    assert isinstance(result, JobFailed)
    assert result.error["type"] == "NodeOutputError"
    assert "router of node 'n'" in result.error["message"]
    assert "payload is a dict" in result.error["message"]


@pytest.mark.parametrize("router_async", [False, True], ids=["sync-router", "async-router"])
@pytest.mark.parametrize(
    "payload, what", [({"b": b"x"}, "bytes"), ({"s": {1}}, "set"), ({"f": float("nan")}, "nan"), ({1: "x"}, "key 1")]
)
async def test_a_send_whose_payload_is_not_json_fails_the_job(threads, router_async, payload, what):
    def decide(state):
        return ["done", Send("n", payload)]

    async def async_decide(state):
        return decide(state)

    result = await run(single(lambda s: None, router=async_decide if router_async else decide), {}, threads)
    assert isinstance(result, JobFailed)
    assert result.error["type"] == "NodeOutputError"
    message = result.error["message"]
    assert "router of 'n'" in message
    assert "Send 0 to 'n': payload" in message  # counted among the Sends, not the keys
    assert what in message


# -- timeouts -------------------------------------------------------------------------


def timed(fn, timeout: float, retry=None) -> CompiledGraph:
    return Graph("g").add_node("n", fn, timeout=timeout, retry=retry).add_edge("n", END).set_entry_point("n").compile()


async def test_an_async_node_past_its_timeout_is_cancelled_and_fails_retryably(threads):
    cancelled = asyncio.Event()

    async def stall(state):
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    result = await run(timed(stall, 0.05, RetryPolicy(max_attempts=2)), {}, threads)
    assert isinstance(result, JobFailed)
    assert result.error["type"] == "NodeTimeout" and "0.05s" in result.error["message"]
    assert result.retryable
    assert cancelled.is_set()


async def test_a_nodes_own_timeout_error_is_not_mistaken_for_its_deadline(threads):
    async def upstream_timed_out(state):
        raise TimeoutError("the model endpoint timed out")

    result = await run(timed(upstream_timed_out, 5.0), {}, threads)
    assert isinstance(result, JobFailed)
    assert result.error == {**result.error, "type": "TimeoutError", "message": "the model endpoint timed out"}


async def test_a_sync_node_past_its_timeout_fails_at_once_and_its_thread_is_handed_over(threads):
    release = threading.Event()
    abandoned = []

    def stuck(state):
        release.wait(10)
        return {"late": True}

    graph = timed(stuck, 0.05)
    result = await run_job(graph, make_job({}), make_ctx(), threads, on_abandoned=abandoned.append)
    assert isinstance(result, JobFailed) and result.error["type"] == "NodeTimeout"
    assert result.duration_ms < 5000
    assert len(abandoned) == 1 and not abandoned[0].done()  # the thread still holds its slot
    release.set()
    assert abandoned[0].result(timeout=5) == ({"late": True}, [], None)


async def test_a_cancelled_sync_job_hands_over_its_running_thread(threads):
    release = threading.Event()
    started = threading.Event()
    abandoned = []

    def stuck(state):
        started.set()
        release.wait(10)

    task = asyncio.create_task(run_job(single(stuck), make_job({}), make_ctx(), threads, on_abandoned=abandoned.append))
    await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(abandoned) == 1 and not abandoned[0].done()
    release.set()
    abandoned[0].result(timeout=5)


async def test_an_inline_node_runs_on_the_event_loop_and_a_plain_sync_node_in_a_thread(threads):
    where: dict[str, threading.Thread] = {}

    def counted(name: str):
        def node(state):
            where[name] = threading.current_thread()
            if state.get("fail"):
                raise ConnectionError("inline and failing")
            return {"count": state["count"] + 1}

        return node

    graph = (
        Graph("g")
        .add_node("fast", counted("fast"), inline=True, retry=RetryPolicy(max_attempts=2))
        .add_node("slow", counted("slow"))
        .add_edge("fast", "slow")
        .add_edge("slow", END)
        .set_entry_point("fast")
        .compile()
    )
    done = await run(graph, {"count": 1}, threads, node="fast")
    assert isinstance(done, JobDone) and done.delta == {"count": 2}
    await run(graph, {"count": 1}, threads, node="slow")
    assert where["fast"] is threading.current_thread()  # the loop's own thread
    assert where["slow"] is not threading.current_thread()

    failed = await run(graph, {"count": 1, "fail": True}, threads, node="fast")
    assert isinstance(failed, JobFailed) and failed.retryable  # its policy applies as anywhere else
    assert failed.error["type"] == "ConnectionError" and "inline and failing" in failed.error["message"]
