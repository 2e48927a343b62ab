"""How the updates of one superstep become the next state: reducers per key, and write conflicts.

A key without a reducer takes the value its one writer returned; two writers
of such a key in the same superstep are a :class:`WriteConflict`, because
which one should win is a question the graph has to answer, not the engine.
A key with a reducer folds every update into the current value, in a fixed
order (by branch: node name, then the Send index), so a run's result never
depends on which worker finished first.

Reducers run in the coordinator (and on the worker, for a router's view of
its node's own update): they must be quick, pure functions of plain data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

ReducerFn = Callable[[Any, Any], Any]
"""``(current, update) -> new``; ``current`` is None when the key is not in the state yet."""


def append(current: Any, update: Any) -> list[Any]:
    """Lists concatenate; a single value is appended."""
    if not isinstance(current, (list, type(None))):
        raise TypeError(f"cannot append to a {type(current).__name__}")
    return [*(current or []), *(update if isinstance(update, list) else [update])]


def add(current: Any, update: Any) -> Any:
    """Numbers add up; the first update starts from 0."""
    for value in (0 if current is None else current, update):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"cannot add a {type(value).__name__}")
    return (current or 0) + update


def merge(current: Any, update: Any) -> dict[str, Any]:
    """Dicts merge one level deep; the later update wins a shared key."""
    if not isinstance(current, (dict, type(None))) or not isinstance(update, dict):
        raise TypeError(f"cannot merge a {type(update).__name__} into a {type(current).__name__}")
    return {**(current or {}), **update}


BUILTIN: dict[str, ReducerFn] = {"append": append, "add": add, "merge": merge}


@dataclass(frozen=True)
class Reducer:
    name: str
    """A built-in name, or the function's ``module.qualname`` (it is part of the graph's fingerprint)."""
    fn: ReducerFn

    @classmethod
    def of(cls, spec: str | ReducerFn) -> Reducer:
        if isinstance(spec, str):
            if spec not in BUILTIN:
                raise ValueError(f"unknown reducer {spec!r}; the built-in ones are {sorted(BUILTIN)}")
            return cls(spec, BUILTIN[spec])
        if not callable(spec):
            raise ValueError(f"a reducer is a name from {sorted(BUILTIN)} or a function (current, update) -> new")
        return cls(f"{getattr(spec, '__module__', '?')}.{getattr(spec, '__qualname__', repr(spec))}", spec)


class WriteConflict(ValueError):
    """Two branches of one superstep wrote a key that has no reducer."""

    def __init__(self, key: str, branches: list[str]) -> None:
        shown = ", ".join(repr(b) for b in branches[:5]) + (
            f" and {len(branches) - 5} more" if len(branches) > 5 else ""
        )
        super().__init__(
            f"state key {key!r} was written by {len(branches)} branches in the same superstep ({shown}) "
            f"and has no reducer; give it one, e.g. Graph(..., reducers={{{key!r}: 'append'}})"
        )
        self.key = key
        self.branches = branches


class ReducerFailed(ValueError):
    """A reducer raised on one branch's update."""

    def __init__(self, key: str, branch: str, reducer: str, exc: Exception) -> None:
        super().__init__(
            f"the reducer {reducer!r} of state key {key!r} failed on the update of {branch!r}: "
            f"{type(exc).__name__}: {exc}"
        )
        self.key = key
        self.branch = branch


@dataclass(frozen=True)
class Write:
    """One branch's update: the keys it set (or updated, for reducer keys) and the keys it deleted."""

    branch: str
    delta: Mapping[str, Any]
    removed: Iterable[str] = ()


def apply_writes(state: Mapping[str, Any], writes: list[Write], reducers: Mapping[str, Reducer]) -> dict[str, Any]:
    """The state after a superstep; ``writes`` must already be in branch order. A new dict."""
    writers: dict[str, list[str]] = {}
    for write in writes:
        for key in dict.fromkeys((*write.delta, *write.removed)):  # once per branch, in a stable order
            if key not in reducers:
                writers.setdefault(key, []).append(write.branch)
    for key, branches in writers.items():
        if len(branches) > 1:
            raise WriteConflict(key, branches)
    new = dict(state)
    for write in writes:
        for key in write.removed:
            new.pop(key, None)
        for key, value in write.delta.items():
            reducer = reducers.get(key)
            if reducer is None:
                new[key] = value
                continue
            try:
                new[key] = reducer.fn(new.get(key), value)
            except Exception as exc:
                raise ReducerFailed(key, write.branch, reducer.name, exc) from exc
    return new


_ABSENT = object()


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The keys of ``new`` whose values are not the very objects ``old`` has, and the keys ``new`` dropped.

    States are never changed in place (:func:`apply_writes` makes a new dict whose untouched keys keep
    their objects), so identity finds every change for a pointer comparison a key; at worst it names a
    key whose new value equals the old one.
    """
    if old is new:
        return {}, []
    changed = {key: value for key, value in new.items() if old.get(key, _ABSENT) is not value}
    return changed, [key for key in old if key not in new]
