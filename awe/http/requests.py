"""The API's request bodies as typed values, parsed and checked before the coordinator sees them.

Parsing answers two questions in order: is the body JSON at all
(:func:`json_object`, a :class:`BadRequest` if not), and does it say what its
endpoint needs (each request type's ``parse``, a ``RequestError`` naming the
field if not). Whether the values are data the engine can store is the
coordinator's check, made where data enters the engine.

Each request body is described once, as a JSON Schema (draft 2020-12, the dialect of
OpenAPI 3.1): :func:`check` validates a body against it, and the OpenAPI description
(:mod:`awe.http.openapi`) publishes the same object, so the documentation cannot promise
what the parser refuses. JSON Schema with the ``jsonschema`` package rather than apispec
or pydantic: ``jsonschema`` already checks JSON graphs and tool arguments here, a schema is
plain data that OpenAPI 3.1 embeds as it is (no conversion layer to keep true), and the
error messages stay ours. Each property's ``x-error`` is the message a client gets when its
value does not fit; a rule between fields is an entry of the schema's ``allOf`` with its
own ``x-error``. A body is first tried on the schema compiled by ``fastjsonschema``
(:func:`fast_validator`), which only says yes, quickly; a refusal goes to ``jsonschema``, which
words it. What a schema cannot know (whether a graph or a node exists, whether a
state can be stored) the coordinator checks. Query parameters are objects too
(:class:`IntQuery`, :class:`TextQuery`) that both read the request and describe themselves.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import fastjsonschema
from aiohttp import web
from jsonschema import Draft202012Validator

from awe import jsondata
from awe.coordinator.errors import RequestError
from awe.coordinator.run_machine import DEFAULT_MAX_STEPS
from awe.graph.errors import GRAPH_ID_PATTERN
from awe.graph.json_graph import MAX_DEFINITION_BYTES, InvalidGraph, Problem


class BadRequest(Exception):
    """The request could not be read at all (malformed JSON, a query parameter of the wrong type)."""


RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
"""A whole run id (matched with ``fullmatch``): it appears in URLs, log lines and file names."""

JsonSchema = dict[str, Any]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (numbers must be finite)")


def json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or :class:`BadRequest` saying why it is not one."""
    try:
        body = jsondata.from_json(raw or b"null", parse_constant=_refuse_constant)
    except RecursionError:
        raise BadRequest("the body is not valid JSON: it is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, bad UTF-8, NaN, an integer of over 4300 digits
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        kind = type(body).__name__ if body is not None else "empty"
        raise BadRequest(f"the body must be a JSON object, not {kind}")
    return body


# -- the body schemas (see the module docstring) -----------------------------------------


def _field(schema: JsonSchema, error: str, description: str) -> JsonSchema:
    return {**schema, "description": description, "x-error": error}


RUN_ID_ERROR = "'run_id' must be 1-128 characters of letters, digits and _ . : - (starting with one of the first two)"


def _run_id_field(description: str) -> JsonSchema:
    # (?!\n)$ refuses the trailing newline that $ accepts in Python's re (jsonschema's engine).
    pattern = f"^{RUN_ID_PATTERN.pattern}(?!\\n)$"
    return _field({"type": ["string", "null"], "pattern": pattern}, RUN_ID_ERROR, description)


STATE_UPDATE_FIELD = _field(
    {"type": ["object", "null"]},
    "'state_update' must be a JSON object of the state keys to set",
    "State keys to set before the run goes on (the graph's reducers do not apply).",
)

MAX_WAIT_SECONDS = 300.0
DEFAULT_WAIT_SECONDS = 30.0
PAUSE_FIELDS = ("interrupt_before", "interrupt_after", "pause_on_error")


def _node_list(key: str, when: str) -> JsonSchema:
    return _field(
        {"type": ["array", "null"], "items": {"type": "string"}},
        f"'{key}' must be a list of node names",
        f"Pause the run {when} these nodes (besides those the graph declares).",
    )


RUN_REQUEST_SCHEMA: JsonSchema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["graph_id"],
    "properties": {
        "graph_id": _field(
            {"type": "string", "pattern": f"^{GRAPH_ID_PATTERN.pattern}(?!\\n)$"},
            "'graph_id' must be a string naming a registered graph (GET /graphs lists them)",
            "the graph to run (GET /graphs lists them)",
        ),
        "initial_state": _field(
            {"type": "object", "default": {}}, "'initial_state' must be a JSON object", "The run's first state."
        ),
        "run_id": _run_id_field(
            "An id for the run (default: a new random one). Sending an id that exists returns that run: "
            "a client may retry after a timeout."
        ),
        "max_steps": _field(
            {"type": ["integer", "null"], "minimum": 1, "maximum": 1_000_000, "default": DEFAULT_MAX_STEPS},
            "'max_steps' must be a whole number from 1 to 1000000",
            "The run fails with StepLimitExceeded after this many steps.",
        ),
        "version": _field(
            {"type": ["integer", "null"], "minimum": 1},
            "'version' must be a graph version number (1 or more); leave it out for the newest",
            "The graph version to run (default: the newest).",
        ),
        "wait": _field(
            {"type": "boolean", "default": False},
            "'wait' must be true or false",
            "Answer once the run has ended (200), or after 'timeout' seconds with the run as it is then (202).",
        ),
        "timeout": _field(
            {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": MAX_WAIT_SECONDS},
            f"'timeout' must be a number of seconds from 0 to {MAX_WAIT_SECONDS:g}",
            f'With "wait": true, seconds to wait (default {DEFAULT_WAIT_SECONDS:g}).',
        ),
        "interrupt_before": _node_list("interrupt_before", "before"),
        "interrupt_after": _node_list("interrupt_after", "after"),
        "pause_on_error": _field(
            {"type": ["boolean", "null"]},
            "'pause_on_error' must be true or false",
            "Pause, rather than fail, when a node fails for good.",
        ),
    },
    "allOf": [
        {
            "description": "a timeout goes with wait",
            "if": {"required": ["timeout"], "properties": {"timeout": {"type": "number"}}},
            "then": {"required": ["wait"], "properties": {"wait": {"const": True}}},
            "x-error": "'timeout' goes with \"wait\": true",
        }
    ],
}

RESUME_REQUEST_SCHEMA: JsonSchema = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "state_update": STATE_UPDATE_FIELD,
        "answer": {"description": "The answer to a node's Interrupt question: any JSON value, null included."},
        "by": _field(
            {"type": ["string", "null"], "minLength": 1, "maxLength": 200},
            "'by' must be a short text saying who or what resumes the run (1-200 characters)",
            "Who or what resumes the run, for the record (default: api and the client's address).",
        ),
    },
}

FORK_REQUEST_SCHEMA: JsonSchema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["step"],
    "properties": {
        "step": _field(
            {"type": "integer", "minimum": 0},
            "'step' must be the number of a step the run completed (0: fork from its start)",
            "the step whose state the new run starts from (0: the run's initial state)",
        ),
        "state_update": STATE_UPDATE_FIELD,
        "run_id": _run_id_field("An id for the new run (default: a new random one)."),
    },
}

_VALIDATORS: dict[int, Draft202012Validator] = {}

FAST_KEYWORDS = frozenset(
    {"type", "properties", "additionalProperties", "required", "items", "pattern", "minimum", "maximum"}
    | {"exclusiveMinimum", "minLength", "maxLength", "const", "allOf", "if", "then"}
    | {"default", "description", "x-error"}  # annotations: no validator reads them (defaults are not applied)
)
"""The keywords a schema may use to be checked by :func:`fast_validator`: those draft-07 has with the
meaning draft 2020-12 gives them (``exclusiveMinimum`` as a number, ``additionalProperties`` as a
boolean), each covered by tests/test_fast_check.py's comparison with ``jsonschema``."""

FastValidator = Callable[[Any], Any]
_FAST: dict[int, tuple[JsonSchema, FastValidator | None]] = {}
"""Each schema's compiled check, by ``id``; the schema is kept with it, so that id names no other schema."""


def fast_validator(schema: JsonSchema) -> FastValidator | None:
    """``schema`` compiled to Python code by ``fastjsonschema`` (ten times ``jsonschema``'s speed on
    a run request), or None if it uses a keyword outside :data:`FAST_KEYWORDS`.

    The compiled function only says yes or no, quickly: it raises on a body the schema refuses,
    and :func:`check` then asks ``jsonschema`` which message to give, so no message depends on it.
    """
    known = _FAST.get(id(schema))
    if known is None or known[0] is not schema:
        validator = None
        if _draft07_keywords_only(schema):
            validator = fastjsonschema.compile(
                {**schema, "$schema": "http://json-schema.org/draft-07/schema#"},
                use_default=False,  # never fill in the body: the parsers read defaults themselves
                use_formats=False,
            )
        known = _FAST[id(schema)] = (schema, validator)
    return known[1]


def _draft07_keywords_only(schema: Any) -> bool:
    """Whether ``schema`` and every schema in it use only :data:`FAST_KEYWORDS`, as draft 2020-12 means them."""
    if not isinstance(schema, dict):
        return False
    for keyword, value in schema.items():
        if keyword not in FAST_KEYWORDS:
            return False
        if keyword == "additionalProperties" and not isinstance(value, bool):
            return False  # a schema there: draft-07 would check it as 2020-12 does, but it is not tested here
        if keyword == "exclusiveMinimum" and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return False  # draft-04's boolean form
        if not all(_draft07_keywords_only(sub) for sub in _subschemas(keyword, value)):
            return False
    return True


def _subschemas(keyword: str, value: Any) -> list[Any]:
    if keyword == "properties":
        return list(value.values())
    if keyword in ("items", "if", "then"):
        return [value]
    if keyword == "allOf":
        return list(value)
    return []


def _fast_accepts(body: dict[str, Any], schema: JsonSchema) -> bool:
    fast = fast_validator(schema)
    if fast is None:
        return False
    try:
        fast(body)
    except Exception:  # refused (or puzzled): jsonschema decides, and says why
        return False
    return True


def check(body: dict[str, Any], schema: JsonSchema) -> None:
    """Raise :class:`RequestError` naming the first thing in ``body`` that ``schema`` refuses.

    Unknown fields come first (a misspelt name explains the rest), then missing ones, then
    the fields in the schema's order, then the rules between fields, so the same body always
    gets the same message. A body the schema's :func:`fast_validator` accepts is accepted
    without the rest: ``jsonschema`` accepts it too (tests/test_fast_check.py).
    """
    if _fast_accepts(body, schema):
        return
    properties: dict[str, JsonSchema] = schema["properties"]
    unknown = set(body) - set(properties)
    if unknown and schema.get("additionalProperties") is False:
        raise RequestError(f"unknown fields {sorted(unknown)}; expected {', '.join(sorted(properties))}")
    for name in schema.get("required", ()):
        if name not in body:
            raise RequestError(f"'{name}' is required: {properties[name]['description']}")
    validator = _VALIDATORS.get(id(schema))
    if validator is None:
        validator = _VALIDATORS[id(schema)] = Draft202012Validator(schema)
    errors = list(validator.iter_errors(body))
    failing = {str(error.path[0]) for error in errors if error.schema_path[0] == "properties"}
    for name in properties:
        if name in failing:
            raise RequestError(properties[name]["x-error"])
    for error in errors:
        if error.schema_path[0] == "allOf":
            raise RequestError(schema["allOf"][int(error.schema_path[1])]["x-error"])
    if errors:  # a keyword this function does not know how to explain: say what jsonschema says
        raise RequestError(errors[0].message)


@dataclass(frozen=True)
class RunRequest:
    """``POST /graph/run``."""

    graph_id: str
    initial_state: dict[str, Any]
    run_id: str | None = None
    max_steps: int = DEFAULT_MAX_STEPS

    version: int | None = None
    pauses: dict[str, Any] = field(default_factory=dict)
    """``interrupt_before`` / ``interrupt_after`` (node names) and ``pause_on_error``, as given."""
    wait: float | None = None
    """With ``"wait": true``: seconds to wait for the run to end before answering (``"timeout"``)."""

    SCHEMA = RUN_REQUEST_SCHEMA

    @classmethod
    def parse(cls, body: dict[str, Any]) -> RunRequest:
        check(body, cls.SCHEMA)
        max_steps, version = body.get("max_steps"), body.get("version")
        return cls(
            body["graph_id"],
            body.get("initial_state", {}),
            body.get("run_id"),
            DEFAULT_MAX_STEPS if max_steps is None else int(max_steps),
            None if version is None else int(version),
            {key: body[key] for key in PAUSE_FIELDS if body.get(key) is not None},
            _wait(body),
        )


def _wait(body: dict[str, Any]) -> float | None:
    if not body.get("wait", False):
        return None
    timeout = body.get("timeout")
    return float(timeout) if timeout is not None else DEFAULT_WAIT_SECONDS


@dataclass(frozen=True)
class ResumeRequest:
    """``POST /runs/{run_id}/resume``: ``{"state_update"?: {...}, "answer"?: any, "by"?: "who"}``."""

    state_update: dict[str, Any]
    answer: dict[str, Any] | None
    """``{"value": ...}`` when the body has an ``answer`` (even ``null``); None when it has none."""
    by: str

    SCHEMA = RESUME_REQUEST_SCHEMA

    @classmethod
    def parse(cls, body: dict[str, Any], *, default_by: str) -> ResumeRequest:
        check(body, cls.SCHEMA)
        return cls(
            body.get("state_update") or {},
            {"value": body["answer"]} if "answer" in body else None,
            body.get("by") or default_by,
        )


@dataclass(frozen=True)
class ForkRequest:
    """``POST /runs/{run_id}/fork``: ``{"step": N, "state_update"?: {...}, "run_id"?: "new id"}``."""

    step: int
    state_update: dict[str, Any]
    run_id: str | None

    SCHEMA = FORK_REQUEST_SCHEMA

    @classmethod
    def parse(cls, body: dict[str, Any]) -> ForkRequest:
        check(body, cls.SCHEMA)
        return cls(int(body["step"]), body.get("state_update") or {}, body.get("run_id"))


# -- query parameters ------------------------------------------------------------------------


@dataclass(frozen=True)
class IntQuery:
    """A whole-number query parameter: read by the handler, described in the API by the same object."""

    name: str
    default: int
    low: int
    high: int
    description: str

    def read(self, request: web.Request) -> int:
        raw = request.query.get(self.name)
        if raw is None:
            return self.default
        try:
            value = int(raw)
        except ValueError:
            raise BadRequest(f"query parameter {self.name!r} must be an integer") from None
        if not self.low <= value <= self.high:
            raise BadRequest(f"query parameter {self.name!r} must be between {self.low} and {self.high}")
        return value

    def schema(self) -> JsonSchema:
        return {"type": "integer", "minimum": self.low, "maximum": self.high, "default": self.default}


@dataclass(frozen=True)
class TextQuery:
    """A text query parameter, optional. With a ``pattern``, a value that does not match it is refused
    here with ``refusal``; an ``enum`` is described, and checked by the coordinator (which names the choices)."""

    name: str
    description: str
    enum: tuple[str, ...] = ()
    pattern: str | None = None
    refusal: str = ""

    def read(self, request: web.Request) -> str | None:
        value = request.query.get(self.name)
        if value is not None and self.pattern is not None and not re.search(self.pattern, value):
            raise BadRequest(f"query parameter {self.name!r} {self.refusal}")
        return value

    def schema(self) -> JsonSchema:
        schema: JsonSchema = {"type": "string"}
        if self.enum:
            schema["enum"] = list(self.enum)
        if self.pattern is not None:
            schema["pattern"] = self.pattern
        return schema


def graph_definition(raw: bytes) -> dict[str, Any]:
    """``POST /graph/create``'s body: a JSON object within the size limit, or InvalidGraph saying why not."""
    if len(raw) > MAX_DEFINITION_BYTES:
        message = f"the definition is {len(raw)} bytes; the limit is {MAX_DEFINITION_BYTES}"
        raise InvalidGraph([Problem("", message)])
    try:
        return json_object(raw)
    except BadRequest as exc:
        raise InvalidGraph([Problem("", str(exc))]) from None
