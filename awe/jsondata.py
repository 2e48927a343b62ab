"""What the engine can store and send: one definition of "JSON data".

A value travels from an HTTP body to SQLite (as JSON text), to a worker (as
msgpack) and back, and out again through the API. Each of those has limits of
its own: msgpack packs integers of at most 64 bits, SQLite and msgpack take
strings only if they encode as UTF-8 (a lone surrogate such as ``"\\ud800"``
does not), ``NaN`` and ``Infinity`` are not JSON, and every encoder recurses,
so a deep enough value overflows the stack. A value that passes :func:`check`
passes all of them, so it is checked once, where it enters the engine (a
request, a node's output, a worker's message), and trusted after that.

State must pass :func:`check`: a bad value is refused with its path. Free-form
diagnostics (error messages, tracebacks, log fields) are never refused, since
losing them helps nobody: :func:`sanitize` turns them into JSON data.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

import orjson

MAX_DEPTH = 100
"""Containers nested deeper than this are refused; real agent states stay far below it."""

INT_MIN = -(2**63)
INT_MAX = 2**64 - 1
"""msgpack packs integers from a signed 64-bit minimum to an unsigned 64-bit maximum."""


class NotJsonData(ValueError):
    """A value the engine cannot store and send; the message names where it is and what is wrong."""

    def __init__(self, path: str, problem: str) -> None:
        if len(path) > 120:  # a path 100 levels deep says nothing its first levels do not
            path = f"{path[:100]}...{path[-12:]}"
        super().__init__(f"{path} {problem}")
        self.path = path
        self.problem = problem


def check(value: Any, path: str = "value", *, max_depth: int = MAX_DEPTH) -> None:
    """Raise :class:`NotJsonData` naming the first part of ``value`` that is not JSON data."""
    try:
        _check(value, path, max_depth)
    except _TooDeep as exc:
        raise NotJsonData(exc.path, f"is nested deeper than {max_depth} levels") from None


class _TooDeep(Exception):
    def __init__(self, path: str) -> None:
        self.path = path


def _check(value: Any, path: str, depth_left: int) -> None:
    if value is None or value is True or value is False:
        return
    kind = type(value)
    if kind is str:
        _check_text(value, path)
    elif kind is int:
        if not INT_MIN <= value <= INT_MAX:
            raise NotJsonData(path, f"is an integer outside 64 bits ({_digits(value)}); send it as a string")
    elif kind is float:
        if not math.isfinite(value):
            raise NotJsonData(path, f"is {value!r}; numbers must be finite (NaN and Infinity are not JSON)")
    elif kind is dict or kind is list or kind is tuple:
        if depth_left <= 0:
            raise _TooDeep(path)
        _check_container(value, path, depth_left - 1)
    else:
        _check_other(value, path, depth_left)


def _check_container(value: dict[Any, Any] | list[Any] | tuple[Any, ...], path: str, depth_left: int) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if type(key) is not str:
                raise NotJsonData(path, f"has the key {key!r}, which is not a string")
            _check_text(key, f"{path} key {_short(key)}")
            _check(item, f"{path}[{key!r}]", depth_left)
    else:
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]", depth_left)


def _check_other(value: Any, path: str, depth_left: int) -> None:
    """Subclasses of the JSON types (an IntEnum, a str subclass) count as their base type."""
    if isinstance(value, str):
        _check_text(value, path)
    elif isinstance(value, int):
        _check(int(value), path, depth_left)
    elif isinstance(value, float):
        _check(float(value), path, depth_left)
    elif isinstance(value, (dict, list, tuple)):
        if depth_left <= 0:
            raise _TooDeep(path)
        _check_container(value, path, depth_left - 1)
    else:
        raise NotJsonData(path, f"is of type {type(value).__name__}, which is not JSON data")


def _check_text(text: str, path: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = text[exc.start : exc.end]
            raise NotJsonData(
                path, f"holds {bad!r} at position {exc.start}, which is not valid Unicode text (a lone surrogate)"
            ) from None


def _digits(value: int) -> str:
    sign = "-" if value < 0 else ""
    digits = len(str(abs(value))) if abs(value).bit_length() < 10_000 else "thousands of"
    return f"{sign}{digits} digits"


def _short(text: str) -> str:
    return repr(text.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace"))


# -- diagnostics ----------------------------------------------------------------


def to_json(value: Any, *, default: Callable[[Any], Any] | None = None) -> str:
    """Compact JSON text, written by orjson (14 to 25 times ``json.dumps`` on states, small or 1 MB).

    orjson refuses what the checks above keep out of states (a lone surrogate, an integer past
    64 bits); for those the standard library writes the text, ASCII-escaped, so a value that
    slipped past the checks is still written rather than lost. ``default`` turns what JSON has no
    type for into something it has (``str``, ``repr``).
    """
    try:
        return orjson.dumps(value, default=default, option=orjson.OPT_NON_STR_KEYS).decode()
    except (orjson.JSONEncodeError, UnicodeDecodeError):
        return json.dumps(value, separators=(",", ":"), default=default)


_LONG_NUMBER = re.compile(rb"[0-9]{19}")
"""19 digits in a row: an integer that may not fit in 64 bits, which orjson would read as a float."""


_DIGITS = b"0123456789"


def _may_hold_long_number(raw: bytes) -> bool:
    """Whether ``raw`` has 19 digits in a row: counted first, since the search alone takes 8 ms on 1 MB of text."""
    digits = len(raw) - len(raw.translate(None, _DIGITS))
    return digits >= 19 and _LONG_NUMBER.search(raw) is not None


def _holds_float(value: Any) -> bool:
    """Whether orjson's reading of a body has a float anywhere: where a misread integer would be.

    A walk over the containers, their members' types gathered at C speed: 4 µs for a body holding
    1 MB of text, where scanning the text for digits takes 0.6 ms, and a third of the scan's time on
    bodies of many small numbers.
    """
    if type(value) is float:
        return True
    stack = [value]
    while stack:
        members = stack.pop()
        if type(members) is dict:
            members = members.values()
        elif type(members) is not list:
            continue
        types = set(map(type, members))
        if float in types:
            return True
        if dict in types or list in types:
            stack.extend(m for m in members if type(m) is dict or type(m) is list)
    return False


def from_json(raw: bytes, *, parse_constant: Callable[[str], Any] | None = None) -> Any:
    """``json.loads(raw, parse_constant=...)``, what it returns or raises, ten times faster on a small body.

    orjson reads the body when it can give the same value: it refuses what ``json.loads`` reads
    differently or refuses with another message (NaN and Infinity, a lone surrogate, numbers past
    a double's range, a BOM, UTF-16, nesting past 1024 levels, any malformed text), and that goes to
    ``json.loads``. The one thing orjson reads differently without refusing is an integer past 64
    bits (it gives a float), so a body whose reading holds a float, and whose text holds 19 digits in
    a row, is read again by ``json.loads``.
    """
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw, parse_constant=parse_constant)
    if _holds_float(value) and _may_hold_long_number(raw):
        return json.loads(raw, parse_constant=parse_constant)
    return value


def json_size(value: Any) -> int:
    """Bytes of ``value`` (JSON data, see :func:`check`) as compact JSON: what a size limit measures."""
    return len(orjson.dumps(value))


def sanitize(value: Any, *, max_depth: int = 20) -> Any:
    """A JSON-data copy of ``value`` for diagnostics: odd parts are replaced by readable text.

    Non-finite floats and 64-bit-overflowing integers become their ``repr``, text that is not
    valid Unicode has the bad characters escaped (``\\udc80``), other objects become their
    ``repr``, and anything nested deeper than ``max_depth`` becomes ``"..."``.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, int):
        return int(value) if INT_MIN <= value <= INT_MAX else repr(value)[:64]
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else repr(value)
    if isinstance(value, (dict, list, tuple)):
        if max_depth <= 0:
            return "..."
        if isinstance(value, dict):
            return {clean_text(str(k)): sanitize(v, max_depth=max_depth - 1) for k, v in value.items()}
        return [sanitize(v, max_depth=max_depth - 1) for v in value]
    return clean_text(repr(value))


def clean_text(text: str) -> str:
    """``text`` if it is valid Unicode, else with each lone surrogate escaped as ``\\udXXX``."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
