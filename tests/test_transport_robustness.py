"""Garbage on the coordinator's ZeroMQ port is logged and dropped; the engine keeps working."""

from __future__ import annotations

import json

import msgpack
import zmq
from engine import Engine

from awe.transport import MAX_MESSAGES_PER_SEND
from awe.transport.messages import PROTOCOL_VERSION, Hello

GARBAGE = [
    b"",
    b"\x00\x01\x02 not msgpack \xff",
    msgpack.packb([1, 2, 3]),
    msgpack.packb({"kind": "hello"}),  # no version
    msgpack.packb({"v": PROTOCOL_VERSION + 1, "kind": "hello"}),  # from the future
    msgpack.packb({"v": PROTOCOL_VERSION, "kind": "launch_missiles"}),
    msgpack.packb({"v": PROTOCOL_VERSION, "kind": "hello", "worker_id": 7}),  # wrong types, missing fields
    msgpack.packb(
        {"v": PROTOCOL_VERSION, "kind": "job_done", "job_id": "x", "run_id": "y", "delta": {}}
    ),  # unknown sender
    msgpack.packb({"v": PROTOCOL_VERSION, "kind": "job", "job_id": "x"}),  # a coordinator-bound job?
]


async def test_malformed_frames_are_dropped_and_logged(process_engine: Engine) -> None:
    # A process: the test reads the coordinator's log file and checks that the process survived.
    engine = process_engine
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.IDENTITY, b"intruder")
    sock.connect(engine.bind)
    try:
        for frame in GARBAGE:
            sock.send(frame)
        sock.send_multipart([b"frame"] * (MAX_MESSAGES_PER_SEND + 1))  # more messages in one than any worker sends
        # A Hello whose graph fingerprints do not match: it joins, but is never given a job.
        sock.send(Hello(worker_id="intruder", pid=1, host="x", capacity=8, graphs={"counter_loop": "0000"}).encode())
        run_id = await engine.start_run("counter_loop", {"count": 0, "target": 3})
        final = await engine.wait_finished(run_id)
        assert final["status"] == "completed"
        assert {s["worker_id"] for s in await engine.steps(run_id)} <= {"w1", "w2"}
        # The job_done from an unknown sender was answered with a request to say hello.
        assert sock.poll(5000), "no reply to a message from an unknown worker"
        reply = msgpack.unpackb(sock.recv())
        assert reply["kind"] in ("rejoin", "welcome", "heartbeat")
    finally:
        sock.close()
        ctx.term()
    assert engine.coordinator is not None and engine.coordinator.alive()
    log_lines = [json.loads(line) for line in (engine.log_dir / "coordinator.jsonl").read_text().splitlines()]
    dropped = [line for line in log_lines if line["event"] == "frame_dropped"]
    reasons = " | ".join(line["reason"] for line in dropped)
    assert len(dropped) >= 7, reasons
    expected = f"expected 1 to {MAX_MESSAGES_PER_SEND} messages"
    for words in ("not msgpack", "no protocol version", "newer than ours", "unknown message kind", expected):
        assert words in reasons
