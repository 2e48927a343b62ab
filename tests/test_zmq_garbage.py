"""Hypothesis-made garbage on both ZeroMQ sockets: the coordinator and a worker keep running and keep serving.

Frames of every kind: raw bytes, msgpack values of any shape, and maps that look like messages
(a version, a known kind, some of its fields with values of any type), in one to three parts.
The coordinator gets them from an unknown peer and from a peer that said Hello (so its handlers
see them); a worker gets them from a stand-in coordinator, which then sends it a real job.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack
import zmq
from engine import Engine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zmq_peers import log_events, raw_peer, replies

from awe.transport.messages import MESSAGE_TYPES, PROTOCOL_VERSION, Hello, Job, Welcome

EXAMPLES = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

integers = st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what msgpack can hold
scalars = st.none() | st.booleans() | integers | st.floats() | st.text(max_size=12) | st.binary(max_size=12)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6) | integers, inner, max_size=4),
    max_leaves=12,
)


def _message_like(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    fields = {f.name: values for f in dataclasses.fields(MESSAGE_TYPES[kind])}
    head = {"v": st.sampled_from([PROTOCOL_VERSION, 0, PROTOCOL_VERSION + 1, -1, "1"]), "kind": st.just(kind)}
    return st.fixed_dictionaries(head, optional=fields)


def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


frames = st.one_of(
    st.binary(max_size=300),
    values.map(_pack),
    st.sampled_from(sorted(MESSAGE_TYPES)).flatmap(_message_like).map(_pack),
)
messages = st.lists(frames, min_size=1, max_size=3)


def _no_handler_failed(events: list[dict[str, Any]]) -> None:
    failures = [e for e in events if e["event"] in ("message_handler_failed", "background_task_died")]
    assert failures == [], failures[:3]


async def test_garbage_frames_leave_the_coordinator_serving(process_engine: Engine) -> None:
    engine = process_engine
    with raw_peer(engine.bind, b"garbage") as stranger, raw_peer(engine.bind, b"joined") as joined:
        joined.send(Hello(worker_id="joined", pid=1, host="x", capacity=1, graphs={}).encode())
        assert [m["kind"] for m in await replies(joined, 1.0)][:1] == ["welcome"]

        @EXAMPLES
        @given(message=messages, known=st.booleans())
        def send(message: list[bytes], known: bool) -> None:
            (joined if known else stranger).send_multipart(message)

        send()
        assert engine.coordinator is not None and engine.coordinator.alive()
        run_id = await engine.start_run("counter_loop", {"count": 0, "target": 3})
        final = await engine.wait_finished(run_id)
    assert final["status"] == "completed" and final["state"]["count"] == 3
    assert engine.coordinator.alive()
    _no_handler_failed(log_events(engine.log_dir, "coordinator"))


async def test_garbage_frames_leave_a_worker_serving(bare_engine: Engine) -> None:
    """A stand-in coordinator (a ROUTER on the engine's address) feeds the worker garbage, then a job."""
    engine = bare_engine
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.bind(engine.bind)
    try:
        worker = engine.start_worker(worker_id="w1")
        assert router.poll(30_000), "the worker never said Hello"
        identity, hello = router.recv_multipart()
        assert msgpack.unpackb(hello)["kind"] == "hello"
        router.send_multipart([identity, Welcome("stand-in", heartbeat_interval=0.5).encode()])

        @EXAMPLES
        @given(message=messages)
        def send(message: list[bytes]) -> None:
            router.send_multipart([identity, *message])

        send()
        assert worker.alive()
        job = Job(
            job_id="j1",
            run_id="r1",
            graph_id="counter_loop",
            node="increment",
            step=1,
            attempt=1,
            state={"count": 4, "target": 10},
        )
        router.send_multipart([identity, job.encode()])
        result = None
        for _ in range(200):  # past the heartbeats, Hellos and failures the garbage caused
            assert router.poll(10_000), "the worker went quiet"
            body = msgpack.unpackb(router.recv_multipart()[-1], raw=False)
            if body.get("job_id") == "j1":
                result = body
                break
        assert result is not None and result["kind"] == "job_done", result
        assert result["delta"]["count"] == 5
        assert worker.alive()
    finally:
        router.close()
        ctx.term()
    _no_handler_failed(log_events(engine.log_dir, "worker-w1"))
