"""The API's request bodies as typed values, parsed and checked before the coordinator sees them.

Parsing answers two questions in order: is the body JSON at all
(:func:`json_object`, a :class:`BadRequest` if not), and does it say what its
endpoint needs (each request type's ``parse``, a ``RequestError`` naming the
field if not). Whether the values are data the engine can store is the
coordinator's check, made where data enters the engine.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from awe.coordinator.errors import RequestError
from awe.coordinator.run_machine import DEFAULT_MAX_STEPS
from awe.graph.json_graph import MAX_DEFINITION_BYTES, InvalidGraph, Problem


class BadRequest(Exception):
    """The request could not be read at all (malformed JSON, a query parameter of the wrong type)."""


RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
"""A whole run id (matched with ``fullmatch``): it appears in URLs, log lines and file names."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (numbers must be finite)")


def json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or :class:`BadRequest` saying why it is not one."""
    try:
        body = json.loads(raw or b"null", parse_constant=_refuse_constant)
    except RecursionError:
        raise BadRequest("the body is not valid JSON: it is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, bad UTF-8, NaN, an integer of over 4300 digits
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        kind = type(body).__name__ if body is not None else "empty"
        raise BadRequest(f"the body must be a JSON object, not {kind}")
    return body


PAUSE_FIELDS = ("interrupt_before", "interrupt_after", "pause_on_error")


@dataclass(frozen=True)
class RunRequest:
    """``POST /graph/run``."""

    graph_id: str
    initial_state: dict[str, Any]
    run_id: str | None = None
    max_steps: int = DEFAULT_MAX_STEPS

    version: int | None = None
    pauses: dict[str, Any] = field(default_factory=dict)
    wait: float | None = None
    """With ``"wait": true``: seconds to wait for the run to end before answering (``"timeout"``)."""
    """``interrupt_before`` / ``interrupt_after`` (node names) and ``pause_on_error``, as given."""

    FIELDS = frozenset(
        {"graph_id", "initial_state", "run_id", "max_steps", "version", "wait", "timeout", *PAUSE_FIELDS}
    )

    @classmethod
    def parse(cls, body: dict[str, Any]) -> RunRequest:
        _no_unknown_fields(body, cls.FIELDS)
        if "graph_id" not in body:
            raise RequestError("'graph_id' is required")
        graph_id = body["graph_id"]
        if not isinstance(graph_id, str):
            raise RequestError("'graph_id' must be a string naming a registered graph")
        initial_state = body.get("initial_state", {})
        if not isinstance(initial_state, dict):
            raise RequestError("'initial_state' must be a JSON object")
        return cls(
            graph_id,
            initial_state,
            _run_id(body.get("run_id")),
            _max_steps(body.get("max_steps")),
            _version(body.get("version")),
            _pauses(body),
            _wait(body),
        )


def _run_id(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not RUN_ID_PATTERN.fullmatch(value):
        raise RequestError(
            "'run_id' must be 1-128 characters of letters, digits and _ . : - (starting with one of the first two)"
        )
    return value


def _max_steps(value: Any) -> int:
    if value is None:
        return DEFAULT_MAX_STEPS
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1_000_000:
        raise RequestError("'max_steps' must be a whole number from 1 to 1000000")
    return value


MAX_WAIT_SECONDS = 300.0
DEFAULT_WAIT_SECONDS = 30.0


def _wait(body: dict[str, Any]) -> float | None:
    wait, timeout = body.get("wait", False), body.get("timeout")
    if not isinstance(wait, bool):
        raise RequestError("'wait' must be true or false")
    if timeout is not None and (
        not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout <= MAX_WAIT_SECONDS
    ):
        raise RequestError(f"'timeout' must be a number of seconds from 0 to {MAX_WAIT_SECONDS:g}")
    if not wait:
        if timeout is not None:
            raise RequestError("'timeout' goes with \"wait\": true")
        return None
    return float(timeout) if timeout is not None else DEFAULT_WAIT_SECONDS


def _pauses(body: dict[str, Any]) -> dict[str, Any]:
    pauses: dict[str, Any] = {}
    for key in ("interrupt_before", "interrupt_after"):
        nodes = body.get(key)
        if nodes is None:
            continue
        if not isinstance(nodes, list) or not all(isinstance(n, str) for n in nodes):
            raise RequestError(f"'{key}' must be a list of node names")
        pauses[key] = nodes
    pause_on_error = body.get("pause_on_error")
    if pause_on_error is not None:
        if not isinstance(pause_on_error, bool):
            raise RequestError("'pause_on_error' must be true or false")
        pauses["pause_on_error"] = pause_on_error
    return pauses


@dataclass(frozen=True)
class ResumeRequest:
    """``POST /runs/{run_id}/resume``: ``{"state_update"?: {...}, "answer"?: any, "by"?: "who"}``."""

    state_update: dict[str, Any]
    answer: dict[str, Any] | None
    """``{"value": ...}`` when the body has an ``answer`` (even ``null``); None when it has none."""
    by: str

    FIELDS = frozenset({"state_update", "answer", "by"})

    @classmethod
    def parse(cls, body: dict[str, Any], *, default_by: str) -> ResumeRequest:
        _no_unknown_fields(body, cls.FIELDS)
        return cls(
            _state_update(body.get("state_update")),
            {"value": body["answer"]} if "answer" in body else None,
            _by(body.get("by"), default_by),
        )


@dataclass(frozen=True)
class ForkRequest:
    """``POST /runs/{run_id}/fork``: ``{"step": N, "state_update"?: {...}, "run_id"?: "new id"}``."""

    step: int
    state_update: dict[str, Any]
    run_id: str | None

    FIELDS = frozenset({"step", "state_update", "run_id"})

    @classmethod
    def parse(cls, body: dict[str, Any]) -> ForkRequest:
        _no_unknown_fields(body, cls.FIELDS)
        step = body.get("step")
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise RequestError("'step' must be the number of a step the run completed (0: fork from its start)")
        return cls(step, _state_update(body.get("state_update")), _run_id(body.get("run_id")))


def _no_unknown_fields(body: dict[str, Any], fields: frozenset[str]) -> None:
    unknown = set(body) - fields
    if unknown:
        raise RequestError(f"unknown fields {sorted(unknown)}; expected {', '.join(sorted(fields))}")


def _state_update(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RequestError("'state_update' must be a JSON object of the state keys to set")
    return value


def _by(value: Any, default: str) -> str:
    if value is None:
        return default
    if not isinstance(value, str) or not 0 < len(value) <= 200:
        raise RequestError("'by' must be a short text saying who or what resumes the run (1-200 characters)")
    return value


def _version(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise RequestError("'version' must be a graph version number (1 or more); leave it out for the newest")
    return value


def graph_definition(raw: bytes) -> dict[str, Any]:
    """``POST /graph/create``'s body: a JSON object within the size limit, or InvalidGraph saying why not."""
    if len(raw) > MAX_DEFINITION_BYTES:
        message = f"the definition is {len(raw)} bytes; the limit is {MAX_DEFINITION_BYTES}"
        raise InvalidGraph([Problem("", message)])
    try:
        return json_object(raw)
    except BadRequest as exc:
        raise InvalidGraph([Problem("", str(exc))]) from None
