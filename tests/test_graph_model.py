"""The graph model: building, compiling (validation), routing, fingerprints and loading."""

from __future__ import annotations

import importlib
import itertools
import sys
import textwrap

import pytest

from awe.graph import END, CompiledGraph, Graph, GraphError, GraphLoadError, Join, RouteError, Send, load_graphs

# -- node and router functions (never called by compile) --------------------------


def a(state):
    return None


def b(state):
    return None


def c(state):
    return None


def with_ctx(state, ctx):
    return None


async def async_node(state):
    return None


async def async_with_ctx(state, ctx):
    return None


def router(state):
    return state.get("go")


def linear(*names: str, name: str = "g") -> Graph:
    """entry -> ... -> END over the given names."""
    g = Graph(name)
    fns = {"a": a, "b": b, "c": c}
    for n in names:
        g.add_node(n, fns.get(n, a))
    for src, dst in zip(names, [*names[1:], END], strict=True):
        g.add_edge(src, dst)
    g.set_entry_point(names[0])
    return g


def loop_graph(name: str = "loop") -> Graph:
    """a -> b --router--> {again: a, done: END}."""
    g = Graph(name)
    g.add_node("a", a).add_node("b", b)
    g.add_edge("a", "b")
    g.add_conditional_edge("b", router, {"again": "a", "done": END})
    g.set_entry_point("a")
    return g


# -- compile() rejects ------------------------------------------------------------


def test_edge_from_unknown_node_is_rejected():
    g = linear("a", "b")
    g.add_edge("ghost", "b")
    with pytest.raises(GraphError, match=r"'g'.*unknown node 'ghost'"):
        g.compile()


def test_edge_to_unknown_node_is_rejected():
    g = Graph("g").add_node("a", a).add_edge("a", "ghost").set_entry_point("a")
    with pytest.raises(GraphError) as info:
        g.compile()
    assert "'ghost'" in str(info.value)
    assert "'a'" in str(info.value)
    assert "unknown node" in str(info.value)


def test_edge_starting_at_end_is_rejected():
    g = linear("a")
    g.add_edge(END, "a")
    with pytest.raises(GraphError, match="cannot start at END"):
        g.compile()


def test_conditional_edge_from_unknown_node_is_rejected():
    g = linear("a")
    g.add_conditional_edge("ghost", router, {"x": END})
    with pytest.raises(GraphError, match="unknown node 'ghost'"):
        g.compile()


def test_unknown_branch_target_is_rejected():
    g = Graph("g").add_node("a", a)
    g.add_conditional_edge("a", router, {"done": END, "more": "nowhere"})
    g.set_entry_point("a")
    with pytest.raises(GraphError) as info:
        g.compile()
    message = str(info.value)
    assert "'nowhere'" in message
    assert "branch 'more'" in message
    assert "'a'" in message


def test_missing_entry_point_is_rejected():
    g = Graph("g").add_node("a", a).add_edge("a", END)
    with pytest.raises(GraphError, match=r"'g' has no entry point"):
        g.compile()


def test_entry_point_that_is_not_a_node_is_rejected():
    g = Graph("g").add_node("a", a).add_edge("a", END).set_entry_point("start")
    with pytest.raises(GraphError, match=r"entry point 'start' is not a node"):
        g.compile()


def test_end_as_entry_point_is_rejected():
    g = Graph("g").add_node("a", a).add_edge("a", END).set_entry_point(END)
    with pytest.raises(GraphError, match="is not a node"):
        g.compile()


def test_graph_without_nodes_is_rejected():
    with pytest.raises(GraphError, match="no nodes"):
        Graph("empty").set_entry_point("a").compile()


def test_unreachable_node_is_rejected():
    g = linear("a")
    g.add_node("island", b).add_edge("island", END)
    with pytest.raises(GraphError, match=r"node 'island' cannot be reached from the entry point 'a'"):
        g.compile()


def test_node_without_outgoing_edge_is_rejected():
    g = Graph("g").add_node("a", a).set_entry_point("a")
    with pytest.raises(GraphError, match=r"node 'a' has no outgoing edge, so END cannot be reached from it"):
        g.compile()


def test_dead_end_after_another_node_is_rejected():
    g = Graph("g").add_node("a", a).add_node("b", b).add_edge("a", "b").set_entry_point("a")
    with pytest.raises(GraphError, match="END cannot be reached"):
        g.compile()


def test_dead_end_message_names_the_node_without_outgoing_edge():
    g = Graph("g").add_node("a", a).add_node("b", b).add_edge("a", "b").set_entry_point("a")
    with pytest.raises(GraphError) as info:
        g.compile()
    message = str(info.value)
    assert "node 'b'" in message
    assert "no outgoing edge" in message
    assert "loops" not in message


def test_loop_without_exit_is_rejected():
    g = Graph("g").add_node("a", a).add_node("b", b)
    g.add_edge("a", "b").add_edge("b", "a").set_entry_point("a")
    with pytest.raises(GraphError, match=r"END cannot be reached from node '(a|b)' \(every path from it loops\)"):
        g.compile()


def test_loop_with_a_dead_end_branch_is_rejected():
    """Reachability of END is checked per node, not just from the entry point."""
    g = Graph("g").add_node("a", a).add_node("b", b).add_node("trap", c)
    g.add_conditional_edge("a", router, {"done": END, "trap": "trap", "b": "b"})
    g.add_edge("b", END)
    g.add_edge("trap", "trap")
    g.set_entry_point("a")
    with pytest.raises(GraphError, match=r"END cannot be reached from node 'trap'"):
        g.compile()


def test_duplicate_node_is_rejected():
    g = Graph("g").add_node("a", a)
    with pytest.raises(GraphError, match=r"node 'a' is added twice"):
        g.add_node("a", b)


def test_end_is_a_reserved_node_name():
    with pytest.raises(GraphError, match="reserved"):
        Graph("g").add_node(END, a)


def test_empty_node_name_is_rejected():
    with pytest.raises(GraphError, match="non-empty"):
        Graph("g").add_node("", a)


def test_graph_needs_a_name():
    with pytest.raises(GraphError):
        Graph("  ")


def test_non_callable_node_is_rejected():
    with pytest.raises(GraphError, match=r"node 'x' is not callable"):
        Graph("g").add_node("x", 42)


def test_non_callable_router_is_rejected():
    with pytest.raises(GraphError, match="router of 'a' is not callable"):
        Graph("g").add_node("a", a).add_conditional_edge("a", "nope", {"x": END})


def test_conditional_edge_without_branches_is_rejected():
    with pytest.raises(GraphError, match="no branches"):
        Graph("g").add_node("a", a).add_conditional_edge("a", router, {})


@pytest.mark.parametrize(
    "fn, count",
    [(lambda: None, 0), (lambda state, ctx, extra: None, 3)],
    ids=["no-params", "three-params"],
)
def test_wrong_node_signature_is_rejected(fn, count):
    with pytest.raises(GraphError) as info:
        Graph("g").add_node("bad", fn)
    message = str(info.value)
    assert "'bad'" in message
    assert f"takes {count} positional parameters" in message


def test_two_conditional_edges_are_rejected():
    g = Graph("g").add_node("a", a)
    g.add_conditional_edge("a", router, {"x": END})
    g.add_conditional_edge("a", router, {"y": END})
    g.set_entry_point("a")
    with pytest.raises(GraphError, match=r"node 'a' has two conditional edges"):
        g.compile()


def test_the_same_edge_twice_is_rejected():
    g = linear("a", "b")
    g.add_edge("a", "b")
    with pytest.raises(GraphError, match=r"the edge 'a' -> 'b' is added twice"):
        g.compile()


def test_a_single_source_list_is_a_plain_edge():
    g = linear("a", "b")
    g.add_edge(["a"], "b")  # the same edge as add_edge("a", "b"), so added twice
    with pytest.raises(GraphError, match=r"the edge 'a' -> 'b' is added twice"):
        g.compile()
    compiled = Graph("g").add_node("a", a).add_edge(["a"], END).set_entry_point("a").compile()
    assert dict(compiled.edges) == {"a": (END,)}
    assert compiled.joins == ()


# -- compile() accepts ------------------------------------------------------------


def test_linear_graph_compiles():
    compiled = linear("a", "b", "c").compile()
    assert isinstance(compiled, CompiledGraph)
    assert compiled.entry == "a"
    assert list(compiled.nodes) == ["a", "b", "c"]
    assert dict(compiled.edges) == {"a": ("b",), "b": ("c",), "c": (END,)}
    assert dict(compiled.routers) == {}
    assert compiled.joins == ()
    assert dict(compiled.reducers) == {}
    assert compiled.targets("a") == ["b"]
    assert compiled.targets("c") == [END]
    assert compiled.successors("a", None) == (["b"], [])
    assert compiled.successors("c", None) == ([END], [])


def test_two_outgoing_edges_are_parallel_branches():
    g = Graph("g").add_node("a", a).add_node("b", b).add_node("c", c)
    g.add_edge("a", "b").add_edge("a", "c").add_edge("b", END).add_edge("c", END).set_entry_point("a")
    compiled = g.compile()
    assert dict(compiled.edges)["a"] == ("b", "c")
    assert compiled.targets("a") == ["b", "c"]
    assert compiled.successors("a", None) == (["b", "c"], [])
    assert compiled.describe()["edges"][:2] == [{"source": "a", "target": "b"}, {"source": "a", "target": "c"}]


def test_edge_plus_conditional_edge_compiles_and_follows_both():
    g = Graph("g").add_node("a", a).add_node("b", b).add_node("c", c)
    g.add_edge("a", "b").add_edge("b", END).add_edge("c", END)
    g.add_conditional_edge("a", router, {"x": "c", "stop": END, "same": "b"})
    g.set_entry_point("a")
    compiled = g.compile()
    assert set(compiled.targets("a")) == {"b", "c", END}
    assert compiled.successors("a", "x") == (["b", "c"], [])
    assert compiled.successors("a", "stop") == (["b", END], [])
    assert compiled.successors("a", "same") == (["b"], [])  # the union, without duplicates
    with pytest.raises(RouteError):
        compiled.successors("a", None)  # the router still has to answer


def test_loop_through_a_conditional_edge_compiles():
    compiled = loop_graph().compile()
    assert set(compiled.targets("b")) == {"a", END}
    assert compiled.successors("a", None) == (["b"], [])
    assert compiled.successors("b", "again") == (["a"], [])
    assert compiled.successors("b", "done") == ([END], [])


def test_self_loop_through_a_conditional_edge_compiles():
    g = Graph("g").add_node("a", a)
    g.add_conditional_edge("a", router, {"again": "a", "stop": END}).set_entry_point("a")
    compiled = g.compile()
    assert compiled.successors("a", "again") == (["a"], [])
    assert compiled.successors("a", "stop") == ([END], [])


def test_list_form_branches_use_each_name_as_its_key():
    g = Graph("g").add_node("a", a).add_node("b", b).add_node("c", c)
    g.add_conditional_edge("a", router, ["b", "c", END])
    g.add_edge("b", END).add_edge("c", END).set_entry_point("a")
    compiled = g.compile()
    assert dict(compiled.routers["a"].branches) == {"b": "b", "c": "c", END: END}
    assert compiled.successors("a", "b") == (["b"], [])
    assert compiled.successors("a", "c") == (["c"], [])
    assert compiled.successors("a", END) == ([END], [])


def test_node_kinds_are_detected():
    g = Graph("g")
    g.add_node("sync", a).add_node("ctx", with_ctx).add_node("async", async_node).add_node("both", async_with_ctx)
    g.add_edge("sync", "ctx").add_edge("ctx", "async").add_edge("async", "both").add_edge("both", END)
    compiled = g.set_entry_point("sync").compile()
    kinds = {n: (s.is_async, s.takes_context) for n, s in compiled.nodes.items()}
    assert kinds == {
        "sync": (False, False),
        "ctx": (False, True),
        "async": (True, False),
        "both": (True, True),
    }
    assert compiled.nodes["both"].fn is async_with_ctx


def test_async_callable_object_is_async():
    class Node:
        async def __call__(self, state):
            return None

    g = Graph("g").add_node("n", Node()).add_edge("n", END).set_entry_point("n")
    spec = g.compile().nodes["n"]
    assert spec.is_async is True
    assert spec.takes_context is False


def test_parameters_with_defaults_do_not_count():
    def node(state, ctx, retries=3):
        return None

    spec = Graph("g").add_node("n", node).add_edge("n", END).set_entry_point("n").compile().nodes["n"]
    assert spec.takes_context is True


def test_compile_does_not_freeze_the_builder():
    g = linear("a")
    first = g.compile()
    g.add_node("b", b)  # unreachable now
    with pytest.raises(GraphError):
        g.compile()
    assert list(first.nodes) == ["a"]


# -- successors() ---------------------------------------------------------------------


def fan_graph() -> Graph:
    """a --router--> {b: b, c: c, d: d, done: END}; b, c, d -> END."""
    g = Graph("fan").add_node("a", a).add_node("b", b).add_node("c", c).add_node("d", a)
    g.add_conditional_edge("a", router, {"b": "b", "c": "c", "d": "d", "done": END})
    g.add_edge("b", END).add_edge("c", END).add_edge("d", END).set_entry_point("a")
    return g


def test_successors_with_an_unknown_key_raises_route_error_naming_node_and_keys():
    compiled = loop_graph().compile()
    with pytest.raises(RouteError) as info:
        compiled.successors("b", "sideways")
    message = str(info.value)
    assert "'b'" in message
    assert "'sideways'" in message
    assert "['again', 'done']" in message


@pytest.mark.parametrize("route", [None, {"done": 1}, 1.5, [["done"]], {"send": "a"}], ids=repr)
def test_successors_rejects_non_key_routes(route):
    compiled = loop_graph().compile()
    with pytest.raises(RouteError, match="'b'"):
        compiled.successors("b", route)


def test_successors_matches_int_and_bool_routes_by_their_string_form():
    g = Graph("g").add_node("a", a).add_node("b", b)
    g.add_conditional_edge("a", router, {1: "b", False: END})
    g.add_edge("b", END).set_entry_point("a")
    compiled = g.compile()
    assert compiled.successors("a", 1) == (["b"], [])
    assert compiled.successors("a", "1") == (["b"], [])
    assert compiled.successors("a", False) == ([END], [])
    assert compiled.successors("a", [1, False]) == (["b", END], [])
    with pytest.raises(RouteError):
        compiled.successors("a", True)


def test_successors_rejects_an_empty_list_of_branches():
    compiled = loop_graph().compile()
    with pytest.raises(RouteError) as info:
        compiled.successors("b", [])
    assert "'b'" in str(info.value)
    assert "no branch" in str(info.value)


def test_successors_of_a_list_of_keys_are_all_their_targets_once():
    compiled = fan_graph().compile()
    assert compiled.successors("a", ["c", "b", "c"]) == (["c", "b"], [])
    assert compiled.successors("a", ["b", "c", "d"]) == (["b", "c", "d"], [])


def test_end_in_a_list_of_keys_ends_only_that_branch():
    compiled = fan_graph().compile()
    assert compiled.successors("a", ["b", "done"]) == (["b", END], [])


def test_one_bad_key_in_a_list_fails_the_whole_answer():
    compiled = fan_graph().compile()
    with pytest.raises(RouteError, match="'nope'"):
        compiled.successors("a", ["b", "nope"])


def test_a_send_to_one_of_the_routers_branches_becomes_a_send():
    compiled = fan_graph().compile()
    names, sends = compiled.successors("a", [Send("b", {"i": 0}).to_wire(), {"send": "b", "payload": {"i": 1}}, "c"])
    assert names == ["c"]
    assert sends == [Send("b", {"i": 0}), Send("b", {"i": 1})]
    assert compiled.successors("a", {"send": "d", "payload": {}}) == ([], [Send("d", {})])


def test_send_to_wire_is_the_routes_wire_form():
    assert Send("b", {"i": 1}).to_wire() == {"send": "b", "payload": {"i": 1}}


@pytest.mark.parametrize("target", ["ghost", END, "a"], ids=["unknown", "END", "not-a-branch"])
def test_a_send_outside_the_routers_branches_is_a_route_error(target):
    compiled = fan_graph().compile()
    with pytest.raises(RouteError) as info:
        compiled.successors("a", [{"send": target, "payload": {}}])
    message = str(info.value)
    assert "router of node 'a'" in message
    assert repr(target) in message
    assert "['b', 'c', 'd']" in message  # the branches it may send to, END left out


def test_a_send_with_a_payload_that_is_not_a_dict_is_a_route_error():
    compiled = fan_graph().compile()
    with pytest.raises(RouteError, match="'a'"):
        compiled.successors("a", [{"send": "b", "payload": [1]}])


def test_a_node_without_router_ignores_the_route():
    compiled = linear("a", "b").compile()
    assert compiled.successors("a", None) == (["b"], [])
    assert compiled.successors("a", "anything") == (["b"], [])


def test_route_error_is_a_lookup_error():
    assert issubclass(RouteError, LookupError)


# -- joins ---------------------------------------------------------------------------


def diamond(name: str = "g") -> Graph:
    """a -> {b, c} (parallel); join [c, b] -> d; d -> END."""
    g = Graph(name).add_node("a", a).add_node("b", b).add_node("c", c).add_node("d", a)
    g.add_edge("a", "b").add_edge("a", "c")
    g.add_edge(["c", "b"], "d")
    g.add_edge("d", END).set_entry_point("a")
    return g


def test_a_join_compiles_and_is_described_with_sorted_sources():
    compiled = diamond().compile()
    assert compiled.joins == (Join(("b", "c"), "d"),)
    assert compiled.describe()["joins"] == [{"sources": ["b", "c"], "target": "d"}]
    assert compiled.targets("b") == ["d"]
    assert compiled.targets("c") == ["d"]
    assert "b" not in compiled.edges and "c" not in compiled.edges  # a join is not a plain edge
    assert compiled.successors("b", None) == ([], [])  # whether d runs depends on c: the run decides


def test_a_joins_sources_count_as_having_an_outgoing_edge():
    # without the join, b and c would be dead ends
    g = Graph("g").add_node("a", a).add_node("b", b).add_node("c", c)
    g.add_edge("a", "b").add_edge("a", "c").set_entry_point("a")
    with pytest.raises(GraphError, match="no outgoing edge"):
        g.compile()
    g.add_node("d", a).add_edge(["b", "c"], "d").add_edge("d", END)
    assert g.compile().targets("c") == ["d"]


def test_a_join_does_not_make_its_sources_reachable():
    g = Graph("g").add_node("a", a).add_node("b", b).add_node("c", c).add_node("d", a)
    g.add_edge("a", "b").add_edge("b", END).add_edge(["c", "b"], "d").add_edge("d", END).set_entry_point("a")
    with pytest.raises(GraphError, match=r"node 'c' cannot be reached"):
        g.compile()


def test_a_join_naming_a_node_twice_is_rejected():
    g = Graph("g").add_node("a", a).add_node("b", b)
    with pytest.raises(GraphError, match=r"graph 'g': the join \['b', 'a', 'b'\] -> 'c' names a node twice"):
        g.add_edge(["b", "a", "b"], "c")


@pytest.mark.parametrize("source", [[], ["a", 3]], ids=["empty", "not-a-name"])
def test_a_join_needs_a_list_of_node_names(source):
    with pytest.raises(GraphError, match="a join needs a list of node names"):
        Graph("g").add_edge(source, "c")


def test_a_join_from_an_unknown_node_is_rejected():
    g = diamond()
    g.add_edge(["b", "ghost"], "d")
    with pytest.raises(
        GraphError, match=r"'g': the join \['b', 'ghost'\] -> 'd' starts at 'ghost', which is not a node"
    ):
        g.compile()


def test_a_join_from_end_is_rejected():
    g = diamond()
    g.add_edge(["b", END], "d")
    with pytest.raises(GraphError, match="starts at '__end__', which is not a node"):
        g.compile()


@pytest.mark.parametrize("target", [END, "ghost"])
def test_a_join_must_lead_to_a_node(target):
    g = diamond()
    g.add_edge(["b", "c"], target)
    with pytest.raises(GraphError) as info:
        g.compile()
    assert str(info.value) == f"graph 'g': the join ['b', 'c'] -> {target!r} must lead to a node"


def test_the_same_join_twice_is_rejected_whatever_the_order_of_its_sources():
    g = diamond()
    g.add_edge(["b", "c"], "d")
    with pytest.raises(GraphError, match=r"the join \['b', 'c'\] -> 'd' is added twice"):
        g.compile()


def test_joins_change_the_fingerprint():
    with_join = diamond().compile().fingerprint
    g = Graph("g").add_node("a", a).add_node("b", b).add_node("c", c).add_node("d", a)
    g.add_edge("a", "b").add_edge("a", "c").add_edge("b", "d").add_edge("c", "d")
    g.add_edge("d", END).set_entry_point("a")
    assert g.compile().fingerprint != with_join


# -- reducers ---------------------------------------------------------------------------


def keep_longest(current, update):
    return update if current is None or len(update) > len(current) else current


def reduced(reducers, name: str = "g") -> Graph:
    return Graph(name, reducers=reducers).add_node("a", a).add_edge("a", END).set_entry_point("a")


def test_reducers_are_described_by_name():
    compiled = reduced({"items": "append", "n": "add", "m": "merge", "x": keep_longest}).compile()
    assert compiled.describe()["reducers"] == {
        "items": "append",
        "m": "merge",
        "n": "add",
        "x": f"{__name__}.keep_longest",
    }
    assert compiled.reducers["x"].fn is keep_longest
    assert compiled.reducers["items"].fn([1], 2) == [1, 2]


def test_a_graph_without_reducers_describes_none():
    assert loop_graph().compile().describe()["reducers"] == {}


def test_an_unknown_reducer_name_is_rejected_naming_the_key():
    with pytest.raises(GraphError) as info:
        Graph("g", reducers={"items": "appendd"})
    message = str(info.value)
    assert "'g'" in message
    assert "state key 'items'" in message
    assert "'appendd'" in message
    assert "['add', 'append', 'merge']" in message


@pytest.mark.parametrize("spec", [42, None, ["append"]], ids=["int", "none", "list"])
def test_a_reducer_that_is_not_callable_is_rejected_naming_the_key(spec):
    with pytest.raises(GraphError, match=r"graph 'g': state key 'total': a reducer is a name from"):
        Graph("g", reducers={"total": spec})


@pytest.mark.parametrize("key", ["", 3])
def test_a_reducer_for_something_that_is_not_a_state_key_is_rejected(key):
    with pytest.raises(GraphError, match="not a state key"):
        Graph("g", reducers={key: "add"})


def test_reducers_change_the_fingerprint():
    none = reduced({}).compile().fingerprint
    append = reduced({"items": "append"}).compile().fingerprint
    add = reduced({"items": "add"}).compile().fingerprint
    other_key = reduced({"things": "append"}).compile().fingerprint
    custom = reduced({"items": keep_longest}).compile().fingerprint
    assert len({none, append, add, other_key, custom}) == 5
    assert reduced({"items": "append"}).compile().fingerprint == append


# -- describe() and fingerprint --------------------------------------------------------


def test_describe_lists_the_topology():
    d = loop_graph().compile().describe()
    assert d["graph_id"] == "loop"
    assert d["entry_point"] == "a"
    no_retry = {
        "max_attempts": 1,
        "backoff": 0.5,
        "factor": 2.0,
        "max_backoff": 30.0,
        "jitter": True,
        "retry_on": ["Exception"],
    }
    assert d["nodes"] == [
        {"name": "a", "async": False, "takes_context": False, "retry": no_retry, "timeout": None},
        {"name": "b", "async": False, "takes_context": False, "retry": no_retry, "timeout": None},
    ]
    assert d["edges"] == [{"source": "a", "target": "b"}]
    assert d["joins"] == []
    assert d["reducers"] == {}
    assert d["conditional_edges"] == [{"source": "b", "router": "router", "branches": {"again": "a", "done": END}}]
    assert d["fingerprint"] == loop_graph().compile().fingerprint


def test_fingerprint_is_stable_for_the_same_topology():
    one, two = loop_graph().compile(), loop_graph().compile()
    assert one.fingerprint == two.fingerprint
    assert len(one.fingerprint) == 16
    int(one.fingerprint, 16)  # hex


def test_fingerprint_changes_when_an_edge_changes():
    base = linear("a", "b", "c").compile().fingerprint
    g = Graph("g").add_node("a", a).add_node("b", b).add_node("c", c)
    g.add_edge("a", "c").add_edge("c", "b").add_edge("b", END).set_entry_point("a")
    assert g.compile().fingerprint != base


def test_fingerprint_changes_when_a_branch_changes():
    base = loop_graph().compile().fingerprint
    g = Graph("loop").add_node("a", a).add_node("b", b)
    g.add_edge("a", "b")
    g.add_conditional_edge("b", router, {"again": "a", "finish": END})
    g.set_entry_point("a")
    assert g.compile().fingerprint != base


def test_fingerprint_changes_with_the_graph_name():
    assert loop_graph("one").compile().fingerprint != loop_graph("two").compile().fingerprint


# -- load_graphs() -------------------------------------------------------------------

_counter = itertools.count()

GOOD_MODULE = """
from awe.graph import END, Graph

def step(state):
    return {"done": True}

my_graph = Graph("{graph}")
my_graph.add_node("step", step)
my_graph.add_edge("step", END)
my_graph.set_entry_point("step")

not_a_graph = "hello"
"""


@pytest.fixture
def module_dir(tmp_path, monkeypatch):
    """A folder for throw-away graph modules; sys.path and sys.modules are restored afterwards."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    created: list[str] = []

    def write(source: str) -> str:
        name = f"awe_test_graphs_{next(_counter)}_{id(tmp_path) & 0xFFFF:x}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        created.append(name)
        return name

    write.folder = str(tmp_path)
    yield write
    for name in created:
        sys.modules.pop(name, None)


def test_load_graphs_finds_module_level_graphs(module_dir):
    module = module_dir(GOOD_MODULE.replace("{graph}", "my_test_graph"))
    graphs = load_graphs([module], search_path=module_dir.folder)
    assert "my_test_graph" in graphs
    compiled = graphs["my_test_graph"]
    assert isinstance(compiled, CompiledGraph)
    assert compiled.entry == "step"
    assert dict(compiled.edges) == {"step": (END,)}
    assert module in sys.modules


def test_load_graphs_includes_the_builtin_graph(module_dir):
    graphs = load_graphs(search_path=module_dir.folder)
    assert "code_review_agent" in graphs
    review = graphs["code_review_agent"]
    assert review.entry == "extract_functions"
    assert set(review.nodes) == {
        "extract_functions",
        "check_complexity",
        "detect_issues",
        "refactor",
        "llm_review",
        "write_report",
    }
    module = module_dir(GOOD_MODULE.replace("{graph}", "other_graph"))
    both = load_graphs([module], search_path=module_dir.folder)
    assert {"code_review_agent", "other_graph"} <= set(both)


def test_load_graphs_accepts_compiled_graphs(module_dir):
    module = module_dir(
        GOOD_MODULE.replace("{graph}", "precompiled") + "\ncompiled = my_graph.compile()\ndel my_graph\n"
    )
    graphs = load_graphs([module], search_path=module_dir.folder)
    assert graphs["precompiled"].entry == "step"


def test_load_graphs_puts_the_search_path_on_sys_path(module_dir):
    assert module_dir.folder not in sys.path
    load_graphs(search_path=module_dir.folder)
    assert module_dir.folder in sys.path


def test_load_graphs_reports_a_module_that_fails_to_import(module_dir):
    module = module_dir("raise RuntimeError('boom at import')\n")
    with pytest.raises(GraphLoadError) as info:
        load_graphs([module], search_path=module_dir.folder)
    assert repr(module) in str(info.value)
    assert "boom at import" in str(info.value)


def test_load_graphs_reports_a_missing_module(module_dir):
    with pytest.raises(GraphLoadError, match="'no_such_graph_module_xyz'"):
        load_graphs(["no_such_graph_module_xyz"], search_path=module_dir.folder)


def test_load_graphs_reports_a_graph_that_does_not_compile(module_dir):
    module = module_dir(
        """
        from awe.graph import Graph

        def step(state):
            return None

        broken = Graph("broken_graph")
        broken.add_node("step", step)
        broken.set_entry_point("step")
        """
    )
    with pytest.raises(GraphLoadError) as info:
        load_graphs([module], search_path=module_dir.folder)
    message = str(info.value)
    assert repr(module) in message
    assert "'broken_graph'" in message
    assert "END cannot be reached" in message
    assert isinstance(info.value.__cause__, GraphError)


def test_load_graphs_rejects_two_different_graphs_with_one_name(module_dir):
    first = module_dir(GOOD_MODULE.replace("{graph}", "clash"))
    second = module_dir(
        """
        from awe.graph import END, Graph

        def one(state):
            return None

        def two(state):
            return None

        clash = Graph("clash")
        clash.add_node("one", one).add_node("two", two)
        clash.add_edge("one", "two").add_edge("two", END)
        clash.set_entry_point("one")
        """
    )
    with pytest.raises(GraphLoadError, match="'clash' is defined twice"):
        load_graphs([first, second], search_path=module_dir.folder)


@pytest.mark.parametrize("timeout", [0, -1, float("inf"), float("nan"), True, "5"])
def test_a_node_timeout_must_be_a_positive_number_of_seconds(timeout):
    with pytest.raises(GraphError, match="the timeout of node 'a' must be a positive number of seconds"):
        Graph("g").add_node("a", lambda s: None, timeout=timeout)


def test_a_node_timeout_is_part_of_the_description_and_the_fingerprint():
    def build(timeout):
        return (
            Graph("g").add_node("a", lambda s: None, timeout=timeout).add_edge("a", END).set_entry_point("a").compile()
        )

    assert build(2).describe()["nodes"][0]["timeout"] == 2.0
    assert build(2).fingerprint != build(3).fingerprint


# -- inline nodes ------------------------------------------------------------------------------


def test_an_inline_node_is_described_and_changes_the_fingerprint():
    plain = linear("a", "b").compile()
    inlined = Graph("g").add_node("a", a, inline=True).add_node("b", b).add_edge("a", "b").add_edge("b", END)
    compiled = inlined.set_entry_point("a").compile()
    assert compiled.nodes["a"].inline and not compiled.nodes["b"].inline
    assert compiled.describe()["nodes"][0]["inline"] is True
    assert "inline" not in compiled.describe()["nodes"][1]  # absent when false: older graphs keep their fingerprints
    assert compiled.fingerprint != plain.fingerprint


async def _async_inline(state):
    return {}


@pytest.mark.parametrize(
    ("fn", "options", "says"),
    [
        (_async_inline, {"inline": True}, "node 'n' is async, so it runs on the worker's event loop already"),
        (a, {"inline": True, "timeout": 1.0}, "node 'n' is inline and has a timeout"),
        (a, {"inline": "yes"}, "the inline of node 'n' must be True or False"),
    ],
)
def test_inline_is_refused_where_it_cannot_apply(fn, options, says):
    with pytest.raises(GraphError, match=says):
        Graph("g").add_node("n", fn, **options)
