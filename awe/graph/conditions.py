"""Conditions of JSON graphs: small, safe expressions over the state, such as ``state.score >= 80``.

A graph defined over the API routes with conditions instead of Python routers. They are evaluated
with ``simpleeval``, never ``eval``, and are restricted further so that no condition can read
Python internals or run for long:

* ``state`` is the only name. ``state.key`` reads a key of an object and gives ``None`` when the
  key is missing (so ``state.done`` is simply false before a node sets it); ``state.items[-1]``
  and ``state.meta["key"]`` index as in Python and fail on a missing key or index.
* Literals, arithmetic (``+ - * / // % **``), comparisons (``== != < <= > >= in not in is is not``),
  ``and`` / ``or`` / ``not``, ``x if c else y``, list/tuple/dict/set displays and slices.
* Calls only of :data:`FUNCTIONS`, with positional arguments: ``len min max abs round int float
  str bool`` and ``get(container, key, default=None)`` (``str`` of scalars only). No methods
  (``state.get(...)``), no names starting with ``_``, no lambdas, comprehensions, f-strings or ``:=``.
* At most :data:`MAX_CONDITION_LENGTH` characters and :data:`MAX_CONDITION_NODES` syntax nodes, so
  there are no loops and every operation is bounded; numbers past :data:`MAX_INT_BITS` bits and
  strings or lists past :data:`MAX_SEQUENCE_LENGTH` items (a repeated list counts its strings'
  characters, and may hold no containers) are refused as they are computed.

A condition holds when its value is truthy, as in Python. One that fails while evaluated (a
``TypeError`` comparing ``None`` with a number, a missing index, a number too large) raises
:class:`ConditionFailed`, which fails the node naming the condition; it is never retried.
Parts that do not depend on the state (``9**9**9**9``, ``'a' * 10**10``) are computed when the
graph is validated, so such a condition is refused before any run.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from simpleeval import EvalWithCompoundTypes, FeatureNotAvailable, IterableTooLong, NumberTooHigh

from awe.graph.compiled import RouteError

__all__ = [
    "FUNCTIONS",
    "MAX_CONDITION_LENGTH",
    "MAX_CONDITION_NODES",
    "MAX_INT_BITS",
    "MAX_SEQUENCE_LENGTH",
    "Condition",
    "ConditionFailed",
    "InvalidCondition",
    "json_kind",
]

MAX_CONDITION_LENGTH = 500
MAX_CONDITION_NODES = 200
MAX_INT_BITS = 4096
"""Integers computed by ``*``, ``**`` stay below this size (about 1,200 digits)."""
MAX_SEQUENCE_LENGTH = 100_000
"""Strings, lists and tuples built by ``+`` or ``*`` stay below this length (simpleeval's MAX_STRING_LENGTH)."""
MAX_ROUND_DIGITS = 100


class InvalidCondition(ValueError):
    """A condition that does not parse or uses something not allowed; ``problems`` says every reason."""

    def __init__(self, text: str, problems: list[str]) -> None:
        super().__init__(f"condition {text!r}: " + "; ".join(problems))
        self.problems = problems


class ConditionFailed(RouteError):
    """Evaluating a condition raised; the message names the condition and the error."""


def _get(container: Any, key: Any, default: Any = None) -> Any:
    """``container[key]``, or ``default`` when an object lacks the key or a list the index."""
    if isinstance(container, dict):
        return container.get(key, default)
    if isinstance(container, (list, tuple, str)) and isinstance(key, int) and not isinstance(key, bool):
        return container[key] if -len(container) <= key < len(container) else default
    raise TypeError(f"get() reads a key of an object or an index of a list, not of {json_kind(container)}")


def _round(number: Any, ndigits: Any = None) -> Any:
    """``round``, with ``ndigits`` bounded: ``round(5, -10**9)`` would compute ``10**10**9``."""
    if ndigits is None:
        return round(number)
    if not isinstance(ndigits, int) or abs(ndigits) > MAX_ROUND_DIGITS:
        raise NumberTooHigh(f"round() takes an integer number of digits between -100 and 100, not {ndigits!r}")
    return round(number, ndigits)


def _str(value: Any) -> str:
    """``str`` of a scalar: of a list it would copy out every item, which a repetition makes cheap to ask for."""
    if isinstance(value, (list, tuple, dict, set)):
        raise TypeError(f"str() converts numbers, booleans and null, not {json_kind(value)}; test its items instead")
    return str(value)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len,
    "min": min,
    "max": max,
    "abs": abs,
    "round": _round,
    "int": int,
    "float": float,
    "str": _str,
    "bool": bool,
    "get": _get,
}
"""Every function a condition may call."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_sequence(value: Any) -> bool:
    return isinstance(value, (str, list, tuple))


def _mult(a: Any, b: Any) -> Any:
    """``a * b``, refusing integers past MAX_INT_BITS and repetitions weighing more than MAX_SEQUENCE_LENGTH."""
    if _is_int(a) and _is_int(b) and a.bit_length() + b.bit_length() > MAX_INT_BITS:
        raise NumberTooHigh(f"the product would have more than {MAX_INT_BITS} bits")
    for seq, times in ((a, b), (b, a)):
        if _is_sequence(seq) and _is_int(times) and times > 1 and _weight(seq) * times > MAX_SEQUENCE_LENGTH:
            raise IterableTooLong(f"the repetition would weigh more than {MAX_SEQUENCE_LENGTH} items")
    return a * b


def _weight(seq: str | list[Any] | tuple[Any, ...]) -> float:
    """What repeating ``seq`` costs per copy: its characters, or its items with their strings' characters.

    A list holding a container weighs infinitely much: ``[[1] * 10**5] * 10**5`` holds only two
    lists, but comparing two of them takes 10**10 steps. A list of one long string from the state
    weighs that string's length, since comparing copies of it compares the characters.
    """
    if isinstance(seq, str):
        return len(seq)
    if any(isinstance(item, (list, tuple, dict, set)) for item in seq):
        return float("inf")
    return sum(len(item) if isinstance(item, str) else 1 for item in seq)


def _power(a: Any, b: Any) -> Any:
    """``a ** b``, refusing integer results past MAX_INT_BITS (``9**9**9`` would take hours)."""
    if _is_int(a) and _is_int(b) and b > 0 and max(a.bit_length() - 1, 1) * b > MAX_INT_BITS:
        raise NumberTooHigh(f"{a} ** {b} would have more than {MAX_INT_BITS} bits")
    return a**b


def _add(a: Any, b: Any) -> Any:
    """``a + b``, refusing a concatenation past MAX_SEQUENCE_LENGTH."""
    if _is_sequence(a) and _is_sequence(b) and len(a) + len(b) > MAX_SEQUENCE_LENGTH:
        raise IterableTooLong(f"the concatenation would be longer than {MAX_SEQUENCE_LENGTH} items")
    return a + b


def _mod(a: Any, b: Any) -> Any:
    """``a % b`` on numbers only: ``'%0999999999d' % 1`` would build a gigabyte string."""
    if isinstance(a, (str, bytes)):
        raise TypeError("% formats strings in Python; in a condition it only computes remainders of numbers")
    return a % b


OPERATORS: dict[type[ast.AST], Callable[..., Any]] = {
    ast.Add: _add,
    ast.Sub: operator.sub,
    ast.Mult: _mult,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: _mod,
    ast.Pow: _power,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Not: operator.not_,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}

_ALLOWED: tuple[type[ast.AST], ...] = (
    *OPERATORS,
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.BinOp,
    ast.UnaryOp,
    ast.Compare,
    ast.IfExp,
    ast.Call,
    ast.Constant,
    ast.Attribute,
    ast.Subscript,
    ast.Slice,
    ast.Name,
    ast.List,
    ast.Tuple,
    ast.Dict,
    ast.Set,
    ast.Starred,
    ast.Load,
)

_REFUSED: dict[type[ast.AST], str] = {
    ast.Lambda: "lambdas are not allowed",
    ast.ListComp: "comprehensions ([x for x in ...]) are not allowed: a condition cannot loop",
    ast.SetComp: "comprehensions ({x for x in ...}) are not allowed: a condition cannot loop",
    ast.DictComp: "comprehensions ({k: v for ...}) are not allowed: a condition cannot loop",
    ast.GeneratorExp: "generator expressions are not allowed: a condition cannot loop",
    ast.NamedExpr: "assignments (:=) are not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.Await: "await is not allowed",
}

_INSIDE_REFUSED: tuple[type[ast.AST], ...] = (
    ast.comprehension,
    ast.arguments,
    ast.arg,
    ast.keyword,
    ast.FormattedValue,
    ast.Store,
)
"""Parts of constructs refused above: their parent is reported, so they are not reported again."""


@dataclass(frozen=True)
class Condition:
    """A parsed, checked condition; :meth:`holds` evaluates it on a state."""

    text: str
    tree: ast.expr

    @classmethod
    def parse(cls, text: Any) -> Condition:
        """Parse and check ``text``; raises :class:`InvalidCondition` listing every reason it is refused."""
        return _checked(text) if isinstance(text, str) else _checked_now(text)

    def holds(self, state: Mapping[str, Any]) -> bool:
        """Whether the condition is truthy on ``state``; :class:`ConditionFailed` if evaluating it raises."""
        try:
            return bool(_evaluate(self.tree, self.text, state))
        except Exception as exc:
            raise ConditionFailed(f"condition {self.text!r} failed: {type(exc).__name__}: {exc}") from exc


@lru_cache(maxsize=4096)
def _checked(text: str) -> Condition:
    """Conditions are parsed when a graph is validated and again when it is compiled: once is enough."""
    return _checked_now(text)


def _checked_now(text: Any) -> Condition:
    """Parse, refuse what is not allowed, then compute the parts that do not read the state."""
    tree, problems = _parse(text)
    if tree is not None and not problems:
        problems = _node_problems(tree) or _constant_problems(tree.body)
    if tree is None or problems:
        raise InvalidCondition(str(text), problems)
    return Condition(text, tree.body)


def _parse(text: Any) -> tuple[ast.Expression | None, list[str]]:
    """The syntax tree of ``text``, or None and why it cannot be one."""
    if not isinstance(text, str):
        return None, [f"a condition is a string, not {json_kind(text)}"]
    if len(text) > MAX_CONDITION_LENGTH:
        return None, [f"the condition is {len(text)} characters long; at most {MAX_CONDITION_LENGTH} are allowed"]
    if not text.strip():
        return None, ["the condition is empty; write an expression such as state.done"]
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        return None, [f"the condition does not parse: {exc.msg} (column {exc.offset})"]
    except (ValueError, RecursionError, MemoryError) as exc:
        return None, [f"the condition does not parse: {exc}"]
    size = sum(1 for _ in ast.walk(tree))
    if size > MAX_CONDITION_NODES:
        return None, [f"the condition has {size} syntax nodes; at most {MAX_CONDITION_NODES} are allowed"]
    return tree, []


def _node_problems(tree: ast.Expression) -> list[str]:
    """Every construct of ``tree`` that a condition may not use, each named once."""
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    listed = {id(item) for node in ast.walk(tree) if isinstance(node, ast.List) for item in node.elts}
    problems = [
        _STARRED
        if isinstance(node, ast.Starred) and id(node) not in listed
        else _node_problem(node, id(node) in called)
        for node in ast.walk(tree)
    ]
    return list(dict.fromkeys(p for p in problems if p))


_STARRED = "'*' unpacks only inside a list, e.g. [*state.a, *state.b]; pass the list itself: max(state.items)"


def _node_problem(node: ast.AST, is_called: bool) -> str | None:
    """Why ``node`` is refused, or None; ``is_called`` when it is the function of a call."""
    if is_called and not isinstance(node, (ast.Name, ast.Attribute)):
        return f"{ast.unparse(node)!r} cannot be called: only the functions {', '.join(FUNCTIONS)} can"
    if isinstance(node, ast.Name):
        return _name_problem(node.id, is_called)
    if isinstance(node, ast.Attribute):
        if node.attr.startswith("_"):
            return f"'.{node.attr}' is not allowed: names starting with '_' are never read"
        if is_called:
            return (
                f"method calls such as '.{node.attr}(...)' are not allowed; "
                "call a function instead, e.g. get(state, 'key', default)"
            )
    if isinstance(node, ast.Call) and node.keywords:
        return "keyword arguments are not allowed; pass the arguments by position"
    if isinstance(node, ast.Constant) and not isinstance(node.value, (str, int, float, bool, type(None))):
        return f"the literal {ast.unparse(node)} is not allowed: use strings, numbers, true/false or None"
    if isinstance(node, (*_ALLOWED, *_INSIDE_REFUSED)):
        return None
    return _REFUSED.get(type(node)) or f"{type(node).__name__} ({ast.unparse(node)!r}) is not allowed in a condition"


def _name_problem(name: str, is_called: bool) -> str | None:
    """Names are ``state`` and, when called, the allowed functions."""
    if is_called:
        return None if name in FUNCTIONS else f"unknown function {name!r}; the functions are {', '.join(FUNCTIONS)}"
    if name == "state":
        return None
    if name.startswith("_"):
        return f"the name {name!r} is not allowed: names starting with '_' are never read"
    if name in FUNCTIONS:
        return f"the function {name!r} can only be called, e.g. {name}(state.items)"
    return f"unknown name {name!r}: a condition reads the state as state.key (or get(state, 'key', default))"


def _constant_problems(tree: ast.expr) -> list[str]:
    """Compute every part that does not read the state, so ``9**9**9**9`` is refused before any run."""
    problems = []
    for part in _constant_parts(tree):
        try:
            _evaluate(part, ast.unparse(part), {})
        except (NumberTooHigh, IterableTooLong) as exc:
            problems.append(f"{ast.unparse(part)!r} is too large to compute: {exc}")
        except Exception as exc:
            problems.append(f"{ast.unparse(part)!r} always fails: {type(exc).__name__}: {exc}")
    return problems


def _constant_parts(tree: ast.expr) -> list[ast.expr]:
    """The largest sub-expressions that do not mention ``state`` (bare names and literals aside), in order."""
    mentioning = _mentioning_state(tree)
    parts: list[ast.expr] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if id(node) not in mentioning and isinstance(node, ast.expr) and not isinstance(node, _TRIVIAL):
            parts.append(node)
        else:
            stack.extend(reversed(list(ast.iter_child_nodes(node))))
    return parts


def _mentioning_state(tree: ast.AST) -> set[int]:
    """The ids of the nodes that have ``state`` somewhere below them: each name marks its ancestors once."""
    parents: dict[int, ast.AST] = {}
    names: list[ast.Name] = []
    for node in ast.walk(tree):
        parents.update((id(child), node) for child in ast.iter_child_nodes(node))
        if isinstance(node, ast.Name) and node.id == "state":
            names.append(node)
    marked: set[int] = set()
    for name in names:
        current: ast.AST | None = name
        while current is not None and id(current) not in marked:
            marked.add(id(current))
            current = parents.get(id(current))
    return marked


_TRIVIAL = (ast.Name, ast.Constant, ast.Starred, ast.Slice)
"""Nothing to compute ahead (or, for ``*x`` and slices, nothing simpleeval evaluates on its own)."""


def _evaluate(tree: ast.expr, text: str, state: Mapping[str, Any]) -> Any:
    """Evaluate a checked tree with simpleeval, with this module's operators, functions and key reads."""
    evaluator = EvalWithCompoundTypes(operators=OPERATORS, functions=dict(FUNCTIONS), names={"state": state})
    evaluator.functions = dict(FUNCTIONS)  # drop the list/dict/set/tuple constructors it adds
    for refused in (ast.ListComp, ast.GeneratorExp, ast.DictComp, ast.JoinedStr, ast.FormattedValue):
        evaluator.nodes.pop(refused, None)

    def read_key(node: ast.Attribute) -> Any:
        """``x.key`` is ``x.get("key")`` on an object, so no Python attribute (``dict.items``) is ever read."""
        if node.attr.startswith("_"):
            raise FeatureNotAvailable(f"'.{node.attr}' is not allowed")
        value = evaluator._eval(node.value)
        if not isinstance(value, Mapping):
            raise TypeError(f"'.{node.attr}' reads a key of an object, but the value is {json_kind(value)}")
        return value.get(node.attr)

    evaluator.nodes[ast.Attribute] = read_key
    return evaluator.eval(text, previously_parsed=tree)


def json_kind(value: Any) -> str:
    """The JSON name of a value's type, for messages: 'an array', 'null', 'an integer'..."""
    if value is None:
        return "null"
    names = {bool: "a boolean", str: "a string", list: "an array", tuple: "an array", dict: "an object"}
    for kind, name in names.items():
        if isinstance(value, kind):
            return name
    if isinstance(value, (int, float)):
        return "an integer" if isinstance(value, int) else "a number"
    return f"a {type(value).__name__} (not JSON)"
