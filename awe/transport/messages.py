"""Every message the coordinator and the workers exchange, defined once.

On the wire a message is one msgpack map: ``{"v": PROTOCOL_VERSION, "kind":
<tag>, ...fields}``. New optional fields may be added to a message without a
version bump (older peers ignore keys they do not know, and every added field
must have a default); a change that an older peer would misread bumps
``PROTOCOL_VERSION``, and a peer drops messages of a version newer than its
own. :func:`decode` is the single gate: it returns a known message with fields
of the declared types, or raises :class:`ProtocolError`, which the socket
loops log and drop. A number is never NaN or infinite, and a field whose
metadata says ``POSITIVE`` is above zero (a heartbeat interval of 0 or less
would make the worker beat in a tight loop).

Nothing received is unpickled or evaluated: a frame is msgpack data (maps,
lists, strings, numbers, bytes); a frame holding a msgpack extension type is refused.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

import msgpack

PROTOCOL_VERSION = 1

POSITIVE = {"positive": True}
"""A field's metadata: its number must be above zero."""


class ProtocolError(ValueError):
    """A frame that is not a message this side understands."""


@dataclass
class Message:
    kind: ClassVar[str] = ""

    def encode(self) -> bytes:
        body = {name: getattr(self, name) for name in _field_names(type(self))}
        body["v"] = PROTOCOL_VERSION
        body["kind"] = self.kind
        return msgpack.packb(body, use_bin_type=True)


# -- worker -> coordinator ---------------------------------------------------


@dataclass
class Hello(Message):
    """A worker (re)joins. ``graphs`` maps each graph it can run to its fingerprint."""

    kind: ClassVar[str] = "hello"
    worker_id: str
    pid: int
    host: str
    capacity: int
    graphs: dict[str, str]
    running: list[str] = field(default_factory=list)
    """Job ids the worker is still running (non-empty after a reconnect)."""
    stuck: int = 0
    """Slots held by node threads that outlived their timeout or cancel (see ``Heartbeat.stuck``)."""
    jobs_received: int = 0
    """``Job`` messages this process had received when it said this: a job the coordinator sent
    after that number is on its way, not lost, even though ``running`` cannot name it."""
    tools: list[str] = field(default_factory=list)
    """The tools this worker has, by name: it can run a JSON graph's node only if it has its tool."""
    async_capacity: int = 0
    """Async jobs it runs at once, besides ``capacity`` sync ones (threads); 0: they share ``capacity``."""
    keeps_states: bool = False
    """It keeps the last state it was sent of each run, so jobs may carry only what changed (``Job.base``)."""


@dataclass
class Heartbeat(Message):
    """Sent by each side every heartbeat interval; any traffic also counts as alive."""

    kind: ClassVar[str] = "heartbeat"
    sender: str
    running: int = 0
    stuck: int = 0
    """From a worker: slots it cannot use, held by abandoned node threads. A worker sends a
    heartbeat as soon as this changes, before the result of the job that caused it."""


@dataclass
class JobDone(Message):
    """A node finished: the changed top-level keys, and its router's answer if it has one."""

    kind: ClassVar[str] = "job_done"
    job_id: str
    run_id: str
    delta: dict[str, Any]
    removed: list[str] = field(default_factory=list)
    route: Any = None
    duration_ms: float = 0.0


@dataclass
class JobFailed(Message):
    """A node (or its router) raised; ``error`` has ``type``, ``message`` and ``traceback``."""

    kind: ClassVar[str] = "job_failed"
    job_id: str
    run_id: str
    error: dict[str, Any]
    duration_ms: float = 0.0
    retryable: bool = False
    """The node's retry policy accepts this exception (the coordinator counts the attempts)."""


@dataclass
class JobInterrupted(Message):
    """The node raised ``Interrupt(payload)``: it asks a person (``payload``) and waits for the answer."""

    kind: ClassVar[str] = "job_interrupted"
    job_id: str
    run_id: str
    payload: Any = None
    duration_ms: float = 0.0


@dataclass
class StateMissing(Message):
    """The worker does not keep the copy of the state that the job's ``base`` names: send it whole."""

    kind: ClassVar[str] = "state_missing"
    job_id: str
    run_id: str


@dataclass
class NodeLog(Message):
    """A line a node logged through ``ctx.log``; it joins the run's event stream."""

    kind: ClassVar[str] = "node_log"
    job_id: str
    run_id: str
    node: str
    level: str
    event: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class Goodbye(Message):
    """A worker leaves on purpose; its unfinished jobs (if any) go back to the queue."""

    kind: ClassVar[str] = "goodbye"
    worker_id: str
    returned: list[str] = field(default_factory=list)


# -- coordinator -> worker ---------------------------------------------------


@dataclass
class Welcome(Message):
    """The coordinator's answer to ``Hello``: it sets the heartbeat cadence."""

    kind: ClassVar[str] = "welcome"
    coordinator_id: str
    heartbeat_interval: float = field(metadata=POSITIVE)
    graphs: list[dict[str, Any]] = field(default_factory=list)
    """Every JSON graph version the worker may be sent jobs of, each as ``GraphDefined``'s fields."""
    batches: bool = False
    """The coordinator reads several messages in one ZeroMQ message, a frame each (up to
    ``MAX_MESSAGES_PER_SEND``): the worker may send its queued results together."""


@dataclass
class GraphDefined(Message):
    """A JSON graph version created over the API: the worker compiles it to run its nodes."""

    kind: ClassVar[str] = "graph_defined"
    graph_id: str
    version: int
    definition: dict[str, Any]


@dataclass
class Job(Message):
    """Run one branch of one step of a run: a node on the given state."""

    kind: ClassVar[str] = "job"
    job_id: str
    run_id: str
    graph_id: str
    node: str
    step: int
    attempt: int
    state: dict[str, Any]
    branch: str = ""
    """Unique within the step: the node's name, or ``node[i]`` for its i-th Send."""
    from_send: bool = False
    """``state`` is a Send's payload, not the run's state: only the node's returned dict updates the run."""
    graph_version: int = 0
    """The version of a JSON graph (0 for a Python graph, which workers know by name)."""
    answer: dict[str, Any] | None = None
    """``{"value": ...}``: a person's answer to the node's ``Interrupt``; ``ctx.interrupt()`` returns it."""
    base: int = 0
    """0: ``state`` is the whole state. Otherwise ``state`` holds only the keys changed since the copy
    named ``base`` that this worker was sent, and ``removed`` the keys dropped since (see ``keeps_states``)."""
    removed: list[str] = field(default_factory=list)
    version: int = 0
    """The name under which the worker keeps this job's whole state, for a later ``base`` (0: keep nothing)."""
    ended: list[str] = field(default_factory=list)
    """Runs that have ended since this worker's last job, whose copies it keeps: no job of theirs comes
    again, so it may let them go. Told with a job rather than alone: it costs no message of its own."""


@dataclass
class CancelJob(Message):
    """Stop running this job: its run was cancelled. The worker answers with ``JobFailed``."""

    kind: ClassVar[str] = "cancel_job"
    job_id: str


@dataclass
class Rejoin(Message):
    """The coordinator does not know the sender (it restarted, or dropped it): say ``Hello`` again."""

    kind: ClassVar[str] = "rejoin"
    coordinator_id: str


MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.kind: cls
    for cls in (
        Hello,
        Heartbeat,
        JobDone,
        JobFailed,
        JobInterrupted,
        StateMissing,
        NodeLog,
        Goodbye,
        Welcome,
        GraphDefined,
        Job,
        CancelJob,
        Rejoin,
    )
}


def decode(frame: bytes) -> Message:
    """Turn one frame into a message, or raise :class:`ProtocolError` saying why not."""
    try:
        body = msgpack.unpackb(frame, raw=False, strict_map_key=True, ext_hook=_no_extension)
    except Exception as exc:
        raise ProtocolError(f"not msgpack: {exc}") from None
    if not isinstance(body, dict):
        raise ProtocolError(f"expected a map, got {type(body).__name__}")
    version = body.pop("v", None)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise ProtocolError("no protocol version")
    if version > PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {version} is newer than ours ({PROTOCOL_VERSION})")
    kind = body.pop("kind", None)
    cls = MESSAGE_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ProtocolError(f"unknown message kind {kind!r}")
    kwargs = {}
    for name, conforms, required in _fields(cls):
        if name in body:
            value = body[name]
            if not conforms(value):
                raise ProtocolError(f"{kind}.{name} has the wrong type or value ({type(value).__name__})")
            kwargs[name] = value
        elif required:
            raise ProtocolError(f"{kind} is missing {name!r}")
    return cls(**kwargs)


def _no_extension(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack extension type {code} is not part of the protocol")


Check = Callable[[Any], bool]


_FIELDS: dict[type[Message], tuple[tuple[str, Check, bool], ...]] = {}
_FIELD_NAMES: dict[type[Message], tuple[str, ...]] = {}


def _fields(cls: type[Message]) -> tuple[tuple[str, Check, bool], ...]:
    """Each field's name, its type check and whether it is required: worked out once per message type."""
    known = _FIELDS.get(cls)
    if known is not None:
        return known
    hints = typing.get_type_hints(cls)
    known = _FIELDS[cls] = tuple(
        (
            f.name,
            _above_zero(_check_for(hints[f.name])) if f.metadata.get("positive") else _check_for(hints[f.name]),
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
        )
        for f in dataclasses.fields(cls)
    )
    return known


def _above_zero(check: Check) -> Check:
    return lambda value: check(value) and value > 0


def _field_names(cls: type[Message]) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def _check_for(hint: Any) -> Check:
    """A shallow type check for a field's type hint: enough to keep a malformed peer from crashing a handler.

    Built once per field (see :func:`_fields`), since every frame of every message goes through it.
    """
    if hint is Any:
        return _anything
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = tuple(_check_for(arg) for arg in typing.get_args(hint))
        return lambda value: any(check(value) for check in options)
    if hint is type(None):
        return _is_none
    if hint is float:
        return _is_number
    if hint is int:
        return _is_int
    if origin is dict:
        key_type, value_type = typing.get_args(hint)
        key_ok, value_ok = _check_for(key_type), _check_for(value_type)
        if value_ok is _anything:
            return lambda value: isinstance(value, dict) and all(key_ok(k) for k in value)
        return lambda value: isinstance(value, dict) and all(key_ok(k) and value_ok(v) for k, v in value.items())
    if origin is list:
        (item_type,) = typing.get_args(hint)
        item_ok = _check_for(item_type)
        return lambda value: isinstance(value, list) and all(item_ok(v) for v in value)
    if hint is str:
        return _is_str
    return lambda value: isinstance(value, hint)


def _anything(value: Any) -> bool:
    return True


def _is_none(value: Any) -> bool:
    return value is None


def _is_number(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)
