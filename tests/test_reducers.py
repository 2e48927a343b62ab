"""Reducers and apply_writes: how the updates of one superstep become the next state."""

from __future__ import annotations

import copy

import pytest

from awe.graph import Reducer, Write, WriteConflict, apply_writes
from awe.graph.reducers import BUILTIN, ReducerFailed, add, append, merge

# -- built-in reducers -------------------------------------------------------------------


def test_append_extends_with_a_list():
    assert append([1, 2], [3, 4]) == [1, 2, 3, 4]


def test_append_adds_a_single_value_as_one_item():
    assert append([1], 2) == [1, 2]
    assert append([1], {"k": "v"}) == [1, {"k": "v"}]
    assert append([1], "text") == [1, "text"]  # a string is one value, not its characters


def test_append_of_a_nested_list_adds_its_items():
    assert append([], [[1], [2]]) == [[1], [2]]


def test_append_starts_from_an_empty_list():
    assert append(None, 5) == [5]
    assert append(None, [5, 6]) == [5, 6]
    assert append(None, []) == []


def test_append_returns_a_new_list():
    current = [1]
    result = append(current, [2])
    assert current == [1]
    assert result is not current


@pytest.mark.parametrize("current", ["ab", {"k": 1}], ids=["str", "dict"])
def test_append_rejects_a_current_value_that_is_not_a_list(current):
    with pytest.raises(TypeError, match=f"cannot append to a {type(current).__name__}"):
        append(current, 1)


def test_append_rejects_a_number_as_current_value():
    with pytest.raises(TypeError):
        append(5, 1)


def test_add_adds_numbers():
    assert add(2, 3) == 5
    assert add(1.5, 2) == 3.5
    assert add(-1, 1) == 0


def test_add_starts_from_zero():
    assert add(None, 4) == 4
    assert add(None, 0.5) == 0.5


@pytest.mark.parametrize(
    "current, update, name",
    [(1, "2", "str"), ("1", 2, "str"), (None, "x", "str"), (1, True, "bool"), (False, 1, "bool"), (1, [1], "list")],
)
def test_add_rejects_what_is_not_a_number(current, update, name):
    with pytest.raises(TypeError, match=f"cannot add a {name}"):
        add(current, update)


def test_merge_merges_dicts_and_the_update_wins():
    assert merge({"a": 1, "b": 2}, {"b": 3, "c": 4}) == {"a": 1, "b": 3, "c": 4}


def test_merge_is_one_level_deep():
    assert merge({"a": {"x": 1}}, {"a": {"y": 2}}) == {"a": {"y": 2}}


def test_merge_starts_from_an_empty_dict():
    assert merge(None, {"a": 1}) == {"a": 1}


def test_merge_returns_a_new_dict():
    current = {"a": 1}
    result = merge(current, {"b": 2})
    assert current == {"a": 1}
    assert result is not current


@pytest.mark.parametrize(
    "current, update, message",
    [
        ({"a": 1}, [1], "cannot merge a list into a dict"),
        ([1], {"a": 1}, "cannot merge a dict into a list"),
        (None, "x", "cannot merge a str"),
    ],
)
def test_merge_rejects_what_is_not_a_dict(current, update, message):
    with pytest.raises(TypeError, match=message):
        merge(current, update)


# -- Reducer.of ------------------------------------------------------------------------


def longest(current, update):
    return update if current is None or len(update) > len(current) else current


@pytest.mark.parametrize("name", ["append", "add", "merge"])
def test_a_builtin_reducer_is_known_by_its_name(name):
    reducer = Reducer.of(name)
    assert reducer.name == name
    assert reducer.fn is BUILTIN[name]


def test_a_function_reducer_is_named_by_module_and_qualname():
    reducer = Reducer.of(longest)
    assert reducer.name == f"{__name__}.longest"
    assert reducer.fn is longest


def test_reducer_of_rejects_unknown_names_and_non_callables():
    with pytest.raises(ValueError, match=r"unknown reducer 'sum'; the built-in ones are \['add', 'append', 'merge'\]"):
        Reducer.of("sum")
    with pytest.raises(ValueError, match="a reducer is a name from"):
        Reducer.of(3)


# -- apply_writes ----------------------------------------------------------------------

REDUCERS = {"items": Reducer.of("append"), "total": Reducer.of("add"), "seen": Reducer.of("merge")}


def test_writes_without_reducers_set_their_keys():
    state = {"a": 1, "b": 2}
    new = apply_writes(state, [Write("x", {"a": 10}), Write("y", {"c": 3})], {})
    assert new == {"a": 10, "b": 2, "c": 3}


def test_writes_are_folded_through_reducers_in_the_given_order():
    state = {"items": ["start"], "total": 1}
    writes = [
        Write("b", {"items": ["from b"], "total": 2, "seen": {"b": 1, "who": "b"}}),
        Write("a", {"items": "from a", "total": 3, "seen": {"a": 1, "who": "a"}}),
        Write("c[0]", {"items": ["c0", "c0 again"]}),
    ]
    new = apply_writes(state, writes, REDUCERS)
    assert new["items"] == ["start", "from b", "from a", "c0", "c0 again"]
    assert new["total"] == 6
    assert new["seen"] == {"b": 1, "a": 1, "who": "a"}  # the later write wins a shared key


def test_the_order_of_the_writes_is_the_order_of_the_result():
    one = apply_writes({}, [Write("a", {"items": [1]}), Write("b", {"items": [2]})], REDUCERS)
    two = apply_writes({}, [Write("b", {"items": [2]}), Write("a", {"items": [1]})], REDUCERS)
    assert one == {"items": [1, 2]}
    assert two == {"items": [2, 1]}


def test_one_writer_of_a_key_without_reducer_is_no_conflict():
    new = apply_writes(
        {"k": 0}, [Write("a", {"k": 1}), Write("b", {"items": [1]}), Write("c", {"items": [2]})], REDUCERS
    )
    assert new == {"k": 1, "items": [1, 2]}


def test_two_writers_of_a_key_without_reducer_are_a_write_conflict():
    with pytest.raises(WriteConflict) as info:
        apply_writes({"k": 0}, [Write("left", {"k": 1}), Write("right", {"k": 2})], REDUCERS)
    message = str(info.value)
    assert "state key 'k'" in message
    assert "2 branches" in message
    assert "'left'" in message and "'right'" in message
    assert "reducers={'k': 'append'}" in message
    assert info.value.key == "k"
    assert info.value.branches == ["left", "right"]


def test_two_writers_of_the_same_value_still_conflict():
    with pytest.raises(WriteConflict, match="'k'"):
        apply_writes({}, [Write("a", {"k": 1}), Write("b", {"k": 1})], {})


def test_a_removed_key_counts_as_a_write():
    with pytest.raises(WriteConflict) as info:
        apply_writes({"k": 0}, [Write("a", {"k": 1}), Write("b", {}, removed=["k"])], {})
    assert info.value.branches == ["a", "b"]
    with pytest.raises(WriteConflict, match="'k'"):
        apply_writes({"k": 0}, [Write("a", {}, removed=["k"]), Write("b", {}, removed=["k"])], {})


def test_a_removed_key_is_gone():
    assert apply_writes({"k": 0, "j": 1}, [Write("a", {}, removed=["k"])], {}) == {"j": 1}
    assert apply_writes({"j": 1}, [Write("a", {}, removed=["missing"])], {}) == {"j": 1}


@pytest.mark.parametrize("count", [6, 8])
def test_more_than_five_writers_are_summarised(count):
    writes = [Write(f"n[{i}]", {"k": i}) for i in range(count)]
    with pytest.raises(WriteConflict) as info:
        apply_writes({}, writes, {})
    message = str(info.value)
    assert f"{count} branches" in message
    assert f"('n[0]', 'n[1]', 'n[2]', 'n[3]', 'n[4]' and {count - 5} more)" in message
    assert "'n[5]'" not in message
    assert info.value.branches == [f"n[{i}]" for i in range(count)]  # all of them, for the event


def test_five_writers_are_all_named():
    writes = [Write(f"n[{i}]", {"k": i}) for i in range(5)]
    with pytest.raises(WriteConflict) as info:
        apply_writes({}, writes, {})
    assert "'n[4]')" in str(info.value)
    assert "more" not in str(info.value)


def test_a_conflict_is_raised_before_any_reducer_runs():
    calls = []

    def spy(current, update):
        calls.append(update)
        return update

    with pytest.raises(WriteConflict):
        apply_writes({}, [Write("a", {"r": 1, "k": 1}), Write("b", {"k": 2})], {"r": Reducer.of(spy)})
    assert calls == []


def test_a_failing_reducer_is_reducer_failed_naming_key_branch_and_reducer():
    with pytest.raises(ReducerFailed) as info:
        apply_writes({"total": 1}, [Write("ok", {"total": 2}), Write("bad[3]", {"total": "three"})], REDUCERS)
    message = str(info.value)
    assert "'add'" in message
    assert "state key 'total'" in message
    assert "'bad[3]'" in message
    assert "TypeError: cannot add a str" in message
    assert info.value.key == "total"
    assert info.value.branch == "bad[3]"
    assert isinstance(info.value.__cause__, TypeError)


def test_a_failing_custom_reducer_is_named_by_its_function():
    def strict(current, update):
        raise RuntimeError("no thanks")

    with pytest.raises(ReducerFailed) as info:
        apply_writes({}, [Write("a", {"x": 1})], {"x": Reducer.of(strict)})
    assert f"{__name__}.test_a_failing_custom_reducer_is_named_by_its_function.<locals>.strict" in str(info.value)
    assert "RuntimeError: no thanks" in str(info.value)


def test_the_input_state_is_not_mutated():
    state = {"items": [1], "seen": {"a": 1}, "total": 1, "plain": {"x": 1}, "gone": True}
    snapshot = copy.deepcopy(state)
    writes = [
        Write("a", {"items": [2], "seen": {"b": 2}, "total": 5, "plain": {"y": 2}}, removed=["gone"]),
        Write("b", {"items": [3]}),
    ]
    new = apply_writes(state, writes, REDUCERS)
    assert state == snapshot
    assert new == {"items": [1, 2, 3], "seen": {"a": 1, "b": 2}, "total": 6, "plain": {"y": 2}}
    assert new is not state


def test_no_writes_give_an_equal_new_state():
    state = {"a": 1}
    new = apply_writes(state, [], REDUCERS)
    assert new == state
    assert new is not state
