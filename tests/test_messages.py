"""The wire protocol: every message round-trips, and decode() is the single, strict gate."""

from __future__ import annotations

import dataclasses
import random

import msgpack
import pytest

from awe.transport.messages import (
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    CancelJob,
    Goodbye,
    GraphDefined,
    Heartbeat,
    Hello,
    Job,
    JobDone,
    JobFailed,
    JobInterrupted,
    Message,
    NodeLog,
    ProtocolError,
    Rejoin,
    StateMissing,
    Welcome,
    decode,
)

SAMPLES: list[Message] = [
    Hello(
        worker_id="w-1",
        pid=4242,
        host="box",
        capacity=4,
        graphs={"g": "abcd1234abcd1234"},
        running=["j1", "j2"],
        stuck=1,
        jobs_received=3,
        tools=["code_review.refactor"],
    ),
    Heartbeat(sender="w-1", running=3, stuck=1),
    JobDone(
        job_id="r:1:a:1",
        run_id="r",
        delta={"x": 1, "nested": {"l": [1, 2.5, None, "s", True]}},
        removed=["gone"],
        route="done",
        duration_ms=12.5,
    ),
    JobFailed(
        job_id="r:1:a:1",
        run_id="r",
        error={"type": "ValueError", "message": "bad", "traceback": "Traceback..."},
        duration_ms=3.0,
        retryable=True,
    ),
    JobInterrupted(job_id="r:1:a:1", run_id="r", payload={"question": "ship it?"}, duration_ms=1.5),
    StateMissing(job_id="r:1:a:1", run_id="r"),
    NodeLog(job_id="r:1:a:1", run_id="r", node="a", level="info", event="hello", fields={"k": [1, 2]}),
    Goodbye(worker_id="w-1", returned=["j3"]),
    Welcome(
        coordinator_id="c-1",
        heartbeat_interval=2.5,
        graphs=[{"graph_id": "j", "version": 2, "definition": {"graph_id": "j", "nodes": []}}],
    ),
    GraphDefined(graph_id="j", version=2, definition={"graph_id": "j", "nodes": [{"name": "a", "tool": "t"}]}),
    Job(job_id="r:1:a:1", run_id="r", graph_id="g", node="a", step=1, attempt=2, state={"raw_code": "x = 1"}),
    Job(job_id="r:1:b:1", run_id="r", graph_id="j", node="b", step=1, attempt=1, state={}, graph_version=2),
    Job("r:2:a:1", "r", "g", "a", 2, 1, state={"n": 2}, base=41, removed=["gone"], version=42),
    Rejoin(coordinator_id="c-1"),
    CancelJob(job_id="r:1:a:1"),
]


def frame(
    kind: str | None = None, *, version: object = PROTOCOL_VERSION, drop_version: bool = False, **fields
) -> bytes:
    body: dict = dict(fields)
    if not drop_version:
        body["v"] = version
    if kind is not None:
        body["kind"] = kind
    return msgpack.packb(body, use_bin_type=True)


def hello_fields(**overrides) -> dict:
    fields = {"worker_id": "w", "pid": 1, "host": "h", "capacity": 2, "graphs": {"g": "f"}, "running": []}
    fields.update(overrides)
    return fields


def test_samples_cover_every_message_type():
    assert {type(m) for m in SAMPLES} == set(MESSAGE_TYPES.values())
    assert set(MESSAGE_TYPES) == {m.kind for m in SAMPLES}


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: m.kind)
def test_round_trip(message):
    data = message.encode()
    assert isinstance(data, bytes)
    back = decode(data)
    assert type(back) is type(message)
    assert back == message
    assert dataclasses.asdict(back) == dataclasses.asdict(message)


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: m.kind)
def test_encoded_frame_carries_version_and_kind(message):
    body = msgpack.unpackb(message.encode(), raw=False)
    assert body["v"] == PROTOCOL_VERSION
    assert body["kind"] == message.kind
    assert set(body) == {f.name for f in dataclasses.fields(message)} | {"v", "kind"}


def test_round_trip_keeps_any_typed_route_values():
    for route in (None, 3, True, "x"):
        msg = JobDone(job_id="j", run_id="r", delta={}, route=route)
        assert decode(msg.encode()).route == route


# -- decode rejects ----------------------------------------------------------------


@pytest.mark.parametrize(
    "data", [b"\xc1", b"", b"\x92\x01", b"\x81\xa1v"], ids=["never-used", "empty", "truncated-list", "truncated-map"]
)
def test_non_msgpack_bytes(data):
    with pytest.raises(ProtocolError, match="not msgpack"):
        decode(data)


def test_trailing_garbage_is_rejected():
    with pytest.raises(ProtocolError):
        decode(Heartbeat(sender="s").encode() + b"\x00")


@pytest.mark.parametrize("value", [[1, 2, 3], "hello", 7, None], ids=["list", "str", "int", "nil"])
def test_non_map_body(value):
    with pytest.raises(ProtocolError, match="expected a map"):
        decode(msgpack.packb(value))


def test_missing_version():
    with pytest.raises(ProtocolError, match="no protocol version"):
        decode(frame("heartbeat", drop_version=True, sender="s"))


@pytest.mark.parametrize("version", ["1", 1.0, None])
def test_non_int_version(version):
    with pytest.raises(ProtocolError, match="no protocol version"):
        decode(frame("heartbeat", version=version, sender="s"))


def test_newer_version():
    with pytest.raises(ProtocolError, match="newer"):
        decode(frame("heartbeat", version=PROTOCOL_VERSION + 1, sender="s"))


def test_current_version_is_accepted():
    assert decode(frame("heartbeat", version=PROTOCOL_VERSION, sender="s")) == Heartbeat(sender="s")


@pytest.mark.parametrize("kind", ["nope", "", 5, None], ids=["unknown", "empty", "int", "nil"])
def test_unknown_kind(kind):
    with pytest.raises(ProtocolError, match="unknown message kind"):
        decode(frame(kind, sender="s"))


def test_missing_required_field():
    fields = hello_fields()
    del fields["capacity"]
    with pytest.raises(ProtocolError, match="hello is missing 'capacity'"):
        decode(frame("hello", **fields))


@pytest.mark.parametrize(
    "kind, fields, bad",
    [
        ("hello", hello_fields(capacity="four"), "capacity"),
        ("hello", hello_fields(capacity=True), "capacity"),
        ("hello", hello_fields(pid=1.5), "pid"),
        ("hello", hello_fields(running=["j1", 2]), "running"),
        ("hello", hello_fields(running="j1"), "running"),
        ("hello", hello_fields(graphs=["g"]), "graphs"),
        ("hello", hello_fields(worker_id=7), "worker_id"),
        ("heartbeat", {"sender": "s", "running": False}, "running"),
        ("heartbeat", {"sender": None}, "sender"),
        ("job_done", {"job_id": "j", "run_id": "r", "delta": [1, 2]}, "delta"),
        ("job_done", {"job_id": "j", "run_id": "r", "delta": {}, "removed": [1]}, "removed"),
        ("job_done", {"job_id": "j", "run_id": "r", "delta": {}, "duration_ms": "1"}, "duration_ms"),
        ("job_done", {"job_id": "j", "run_id": "r", "delta": {}, "duration_ms": True}, "duration_ms"),
        ("job_failed", {"job_id": "j", "run_id": "r", "error": "boom"}, "error"),
        (
            "node_log",
            {"job_id": "j", "run_id": "r", "node": "n", "level": "info", "event": "e", "fields": []},
            "fields",
        ),
        ("welcome", {"coordinator_id": "c", "heartbeat_interval": "2"}, "heartbeat_interval"),
        (
            "job",
            {"job_id": "j", "run_id": "r", "graph_id": "g", "node": "n", "step": True, "attempt": 1, "state": {}},
            "step",
        ),
        (
            "job",
            {"job_id": "j", "run_id": "r", "graph_id": "g", "node": "n", "step": 1, "attempt": 1, "state": None},
            "state",
        ),
        ("goodbye", {"worker_id": "w", "returned": [None]}, "returned"),
    ],
)
def test_wrong_field_type(kind, fields, bad):
    with pytest.raises(ProtocolError, match=rf"{kind}\.{bad} has the wrong type"):
        decode(frame(kind, **fields))


def test_dict_with_non_string_key_is_rejected():
    # msgpack itself refuses int map keys (strict_map_key), so this never reaches the type check.
    data = msgpack.packb({"v": 1, "kind": "job_done", "job_id": "j", "run_id": "r", "delta": {1: "x"}})
    with pytest.raises(ProtocolError):
        decode(data)


def test_dict_with_bytes_key_is_rejected():
    data = msgpack.packb(
        {"v": 1, "kind": "job_done", "job_id": "j", "run_id": "r", "delta": {b"x": 1}}, use_bin_type=True
    )
    with pytest.raises(ProtocolError, match=r"job_done\.delta has the wrong type"):
        decode(data)


def test_dict_value_of_the_wrong_type_is_rejected():
    with pytest.raises(ProtocolError, match=r"hello\.graphs has the wrong type"):
        decode(frame("hello", **hello_fields(graphs={"g": 5})))


# -- forward compatibility and defaults -------------------------------------------


def test_unknown_extra_field_is_ignored():
    msg = decode(frame("heartbeat", sender="s", running=2, shiny_new_field={"a": 1}))
    assert msg == Heartbeat(sender="s", running=2)
    assert not hasattr(msg, "shiny_new_field")


def test_older_version_is_accepted():
    assert decode(frame("rejoin", version=0, coordinator_id="c")) == Rejoin(coordinator_id="c")


def test_missing_optional_fields_get_their_defaults():
    hello = hello_fields()
    del hello["running"]
    assert decode(frame("hello", **hello)).running == []
    assert decode(frame("heartbeat", sender="s")).running == 0
    done = decode(frame("job_done", job_id="j", run_id="r", delta={"a": 1}))
    assert (done.removed, done.route, done.duration_ms) == ([], None, 0.0)
    assert decode(frame("job_failed", job_id="j", run_id="r", error={})).duration_ms == 0.0
    assert decode(frame("node_log", job_id="j", run_id="r", node="n", level="info", event="e")).fields == {}
    assert decode(frame("goodbye", worker_id="w")).returned == []


def test_defaults_are_not_shared_between_messages():
    one = decode(frame("goodbye", worker_id="w"))
    two = decode(frame("goodbye", worker_id="w"))
    one.returned.append("x")
    assert two.returned == []


def test_int_is_accepted_where_float_is_declared():
    msg = decode(frame("welcome", coordinator_id="c", heartbeat_interval=2))
    assert msg.heartbeat_interval == 2


# -- fuzz ---------------------------------------------------------------------------


def _random_value(rng: random.Random, depth: int = 0):
    choice = rng.randrange(9 if depth < 3 else 6)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.randint(-(2**40), 2**40)
    if choice == 3:
        return rng.choice([rng.random(), float("nan"), float("inf"), -0.0])
    if choice == 4:
        return rng.choice(["", "v", "kind", "hello", "job", "x" * rng.randrange(20)])
    if choice == 5:
        return rng.randbytes(rng.randrange(8))
    if choice == 6:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if choice == 7:
        return msgpack.ExtType(rng.randrange(128), rng.randbytes(rng.randrange(4)))
    return {_random_key(rng): _random_value(rng, depth + 1) for _ in range(rng.randrange(5))}


def _random_key(rng: random.Random):
    return rng.choice(["v", "kind", "sender", "running", "delta", "job_id", rng.choice(list(MESSAGE_TYPES)), b"v"])


def _random_message_body(rng: random.Random) -> dict:
    """A map that gets past the version and kind checks, with random field values."""
    cls = rng.choice(list(MESSAGE_TYPES.values()))
    body = {"v": rng.choice([PROTOCOL_VERSION, PROTOCOL_VERSION, 0, PROTOCOL_VERSION + 1]), "kind": cls.kind}
    for f in dataclasses.fields(cls):
        if rng.random() < 0.9:
            body[f.name] = _random_value(rng)
    return body


def _decode_or_protocol_error(data: bytes) -> None:
    try:
        msg = decode(data)
    except ProtocolError:
        return
    assert isinstance(msg, Message)


def test_fuzz_random_bytes_only_raise_protocol_error():
    rng = random.Random(0)
    for _ in range(500):
        _decode_or_protocol_error(rng.randbytes(rng.randrange(64)))


def test_fuzz_random_structures_only_raise_protocol_error():
    rng = random.Random(0)
    decoded = 0
    for i in range(500):
        value = _random_message_body(rng) if i % 2 else _random_value(rng)
        data = msgpack.packb(value, use_bin_type=True)
        try:
            msg = decode(data)
        except ProtocolError:
            continue
        assert isinstance(msg, Message)
        decoded += 1
    assert decoded < 500


def test_fuzz_mutated_valid_frames_only_raise_protocol_error():
    rng = random.Random(0)
    for i in range(500):
        data = bytearray(SAMPLES[i % len(SAMPLES)].encode())
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        _decode_or_protocol_error(bytes(data))


@pytest.mark.parametrize("interval", [0, 0.0, -1.0, float("nan"), float("inf")])
def test_a_welcome_whose_heartbeat_would_spin_or_stop_is_refused(interval: float) -> None:
    # A worker sleeps this long between heartbeats: 0, less, or NaN would make it beat in a tight loop.
    frame = msgpack.packb(
        {"v": PROTOCOL_VERSION, "kind": "welcome", "coordinator_id": "c", "heartbeat_interval": interval}
    )
    with pytest.raises(ProtocolError, match=r"welcome\.heartbeat_interval has the wrong type or value"):
        decode(frame)


def test_no_number_on_the_wire_is_nan_or_infinite() -> None:
    frame = msgpack.packb(
        {
            "v": PROTOCOL_VERSION,
            "kind": "job_done",
            "job_id": "j",
            "run_id": "r",
            "delta": {},
            "duration_ms": float("nan"),
        }
    )
    with pytest.raises(ProtocolError, match=r"job_done\.duration_ms"):
        decode(frame)


def test_a_msgpack_extension_type_is_refused_not_turned_into_an_object() -> None:
    frame = msgpack.packb(
        {
            "v": PROTOCOL_VERSION,
            "kind": "job_done",
            "job_id": "j",
            "run_id": "r",
            "delta": {"x": msgpack.ExtType(42, b"payload")},
        }
    )
    with pytest.raises(ProtocolError, match="extension type 42"):
        decode(frame)
