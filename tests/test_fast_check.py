"""The fast paths of request parsing decide exactly as the slow ones they stand in front of.

A request body is read by orjson where it gives what ``json.loads`` gives (``jsondata.from_json``)
and checked by a ``fastjsonschema`` function before ``jsonschema`` is asked
(``requests.check``). Both fast paths only ever say "this is fine"; these properties are what
makes that safe: for bodies made of valid values and near misses of every field, the fast
validator accepts exactly what ``jsonschema`` accepts, and ``from_json`` returns or raises
exactly what ``json.loads`` does.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from awe import jsondata
from awe.coordinator.errors import RequestError
from awe.graph.errors import GRAPH_ID_PATTERN
from awe.http import requests
from awe.http.requests import (
    FORK_REQUEST_SCHEMA,
    RESUME_REQUEST_SCHEMA,
    RUN_ID_PATTERN,
    RUN_REQUEST_SCHEMA,
    fast_validator,
)

ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
NOT_TEXT = st.sampled_from([None, True, 0, 7, 1.5, [], {}, ["a"]])


def _ids(pattern: Any) -> st.SearchStrategy[Any]:
    """Ids matching ``pattern`` and their near misses: a trailing newline, too long, a bad character."""
    good = st.from_regex(pattern, fullmatch=True)
    return st.one_of(
        good,
        good.map(lambda s: s + "\n"),
        good.map(lambda s: "\n" + s),
        good.map(lambda s: s + " x"),
        good.map(lambda s: "_" + s),
        st.just("a" * 128),
        st.just("a" * 129),
        st.just(""),
        st.text(max_size=6),
        NOT_TEXT,
    )


def _numbers(*edges: float) -> st.SearchStrategy[Any]:
    """Whole and fractional numbers at and around each edge, bools (not numbers to JSON Schema), text."""
    near = [v for e in edges for v in (e - 1, e, e + 1, float(e), e - 0.5, e + 0.5, e + 1e-9)]
    return st.one_of(
        st.sampled_from(near),
        st.integers(-3, 2_000_000),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from([True, False, None, "1", [1], {}, -0.0, 0.0]),
    )


def _names() -> st.SearchStrategy[Any]:
    return st.one_of(st.lists(st.text(max_size=3), max_size=3), st.lists(ANY_JSON, max_size=2), NOT_TEXT, st.text())


FLAGS = st.sampled_from([True, False, None, 0, 1, 1.0, "true", [], {}])
STATES = st.one_of(st.dictionaries(st.text(max_size=3), ANY_JSON, max_size=2), ANY_JSON)
UNKNOWN = st.dictionaries(st.sampled_from(["intial_state", "extra", "", "Graph_id", "runid"]), ANY_JSON, max_size=1)


Fields = dict[str, st.SearchStrategy[Any]]


@st.composite
def _bodies(draw: st.DrawFn, good: Fields, near: Fields, required: str = "") -> dict[str, Any]:
    """A valid body (any subset of the optional fields) with up to two fields changed to near misses,
    sometimes without its required field, sometimes with an unknown one."""
    optional = {name: value for name, value in good.items() if name != required}
    body = draw(st.fixed_dictionaries({required: good[required]} if required else {}, optional=optional))
    for name in draw(st.lists(st.sampled_from(sorted(near)), max_size=2, unique=True)):
        body[name] = draw(near[name])
    if required and draw(st.integers(0, 9)) == 0:
        del body[required]
    return {**body, **draw(UNKNOWN)}


WHOLE = st.integers(1, 10**6) | st.integers(1, 10**6).map(float)  # 2.0 is a whole number to JSON Schema
RUN_BODIES = _bodies(
    {
        "graph_id": st.from_regex(GRAPH_ID_PATTERN, fullmatch=True),
        "initial_state": st.dictionaries(st.text(max_size=3), ANY_JSON, max_size=2),
        "run_id": st.from_regex(RUN_ID_PATTERN, fullmatch=True) | st.none(),
        "max_steps": WHOLE | st.none(),
        "version": WHOLE | st.integers(1) | st.none(),
        "wait": st.booleans(),
        "timeout": st.floats(0, 300, exclude_min=True) | st.integers(1, 300) | st.none(),
        "interrupt_before": st.lists(st.text(max_size=3), max_size=2) | st.none(),
        "interrupt_after": st.lists(st.text(max_size=3), max_size=2) | st.none(),
        "pause_on_error": st.booleans() | st.none(),
    },
    {
        "graph_id": _ids(GRAPH_ID_PATTERN),
        "initial_state": STATES,
        "run_id": _ids(RUN_ID_PATTERN),
        "max_steps": _numbers(1, 1_000_000),
        "version": _numbers(1),
        "wait": FLAGS,
        "timeout": _numbers(0, 300),
        "interrupt_before": _names(),
        "interrupt_after": _names(),
        "pause_on_error": FLAGS,
    },
    "graph_id",
)
RESUME_BODIES = _bodies(
    {
        "state_update": st.dictionaries(st.text(max_size=3), ANY_JSON, max_size=2) | st.none(),
        "answer": ANY_JSON,
        "by": st.text(min_size=1, max_size=200) | st.none(),
    },
    {
        "state_update": STATES,
        "by": st.sampled_from(["", "a" * 200, "a" * 201, "\U0001f600" * 200, "\U0001f600" * 201]) | NOT_TEXT,
    },
)
FORK_BODIES = _bodies(
    {
        "step": st.integers(0) | st.integers(0, 10).map(float),
        "state_update": st.dictionaries(st.text(max_size=3), ANY_JSON, max_size=2) | st.none(),
        "run_id": st.from_regex(RUN_ID_PATTERN, fullmatch=True) | st.none(),
    },
    {"step": _numbers(0), "state_update": STATES, "run_id": _ids(RUN_ID_PATTERN)},
    "step",
)


def _same_decision(schema: dict[str, Any], body: dict[str, Any]) -> None:
    fast = fast_validator(schema)
    assert fast is not None, "every request schema should have its fast path"
    expected = Draft202012Validator(schema).is_valid(body)
    try:
        fast(body)
        accepted = True
    except Exception:  # any refusal: check() then asks jsonschema
        accepted = False
    assert accepted == expected, body
    if expected:
        requests.check(body, schema)
    else:
        with pytest.raises(RequestError):
            requests.check(body, schema)


@settings(max_examples=300, deadline=None)
@given(RUN_BODIES)
def test_the_fast_run_request_check_accepts_exactly_what_jsonschema_accepts(body: dict[str, Any]) -> None:
    _same_decision(RUN_REQUEST_SCHEMA, body)


@settings(max_examples=300, deadline=None)
@given(RESUME_BODIES)
def test_the_fast_resume_request_check_accepts_exactly_what_jsonschema_accepts(body: dict[str, Any]) -> None:
    _same_decision(RESUME_REQUEST_SCHEMA, body)


@settings(max_examples=300, deadline=None)
@given(FORK_BODIES)
def test_the_fast_fork_request_check_accepts_exactly_what_jsonschema_accepts(body: dict[str, Any]) -> None:
    _same_decision(FORK_REQUEST_SCHEMA, body)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"type": "array", "prefixItems": [{"type": "string"}]}}},
        {"type": "object", "properties": {"a": {"type": "number", "exclusiveMinimum": True}}},
        {"type": "object", "additionalProperties": {"type": "string"}},
        {"type": "object", "properties": {"a": {"$ref": "#/$defs/a"}}, "$defs": {"a": {"type": "string"}}},
    ],
    ids=["prefixItems", "draft-04 exclusiveMinimum", "additionalProperties schema", "$ref"],
)
def test_a_schema_with_a_keyword_draft_07_reads_differently_gets_no_fast_path(schema: dict[str, Any]) -> None:
    assert fast_validator(schema) is None


# -- from_json against json.loads --------------------------------------------------------------


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _outcome(read: Any, raw: bytes) -> str:
    """What reading ``raw`` gives: the value's repr (types, key order and -0.0 included) or the error."""
    try:
        return "value " + repr(read(raw))
    except (ValueError, RecursionError) as exc:
        return f"error {type(exc).__name__}: {exc}"


LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # past 64 bits too: orjson would read those as floats
    st.integers(-(2**64), 2**64).map(lambda n: n * 10**18),
    st.floats(),  # NaN and Infinity are refused by both
    st.floats(allow_nan=False).map(lambda f: f * 1e300),  # past a double's range: json.loads gives inf
    st.text(),  # lone surrogates included
)
VALUES = st.recursive(
    LEAVES, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3), max_leaves=10
)


@st.composite
def json_texts(draw: st.DrawFn) -> bytes:
    text = json.dumps(draw(VALUES), ensure_ascii=draw(st.booleans()), allow_nan=True)
    raw = text.encode("utf-8", "surrogatepass")
    mangle = draw(st.sampled_from(["none", "cut", "insert", "bom", "utf16", "deep"]))
    if mangle == "cut":
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif mangle == "insert":
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.sampled_from([b"\x00", b"\xff", b",", b"]", b"1", b"\\", b'"', b"\n"])) + raw[at:]
    elif mangle == "bom":
        raw = b"\xef\xbb\xbf" + raw
    elif mangle == "utf16":
        raw = text.encode("utf-16", "surrogatepass")
    elif mangle == "deep":
        depth = draw(st.sampled_from([900, 1023, 1024, 1025, 3000]))
        raw = b"[" * depth + raw + b"]" * depth
    return raw


NUMBER_TEXTS = st.one_of(
    st.from_regex(r"\A-?(0|[1-9][0-9]{0,20})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?\Z").map(str.encode),
    st.integers(-(10**25), 10**25).map(lambda n: str(n).encode()),
)
"""Numbers as a client may write them (not only as Python does): digits past a double's precision,
exponents past its range, integers past 64 bits."""


@settings(max_examples=200, deadline=None)
@given(NUMBER_TEXTS)
def test_from_json_reads_numbers_exactly_as_json_loads(raw: bytes) -> None:
    assert _outcome(jsondata.from_json, raw) == _outcome(json.loads, raw)


@settings(max_examples=300, deadline=None)
@given(json_texts())
def test_from_json_reads_and_refuses_exactly_as_json_loads(raw: bytes) -> None:
    fast = _outcome(lambda r: jsondata.from_json(r, parse_constant=_refuse), raw)
    assert fast == _outcome(lambda r: json.loads(r, parse_constant=_refuse), raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"18446744073709551616",
        b"-9223372036854775809",
        b'{"n": 18446744073709551615}',
        b'{"a": [{"b": [0.5, "x"]}, [[18446744073709551616]]]}',
        b'{"text": "18446744073709551616", "score": 0.5}',
        b"1e400",
        b'"\\ud800"',
    ],
)
def test_from_json_keeps_what_orjson_would_change(raw: bytes) -> None:
    assert _outcome(jsondata.from_json, raw) == _outcome(json.loads, raw)
