"""A worker's results leave in order, several in one ZeroMQ message when the coordinator reads them so."""

from __future__ import annotations

import asyncio

import zmq

from awe.transport import MAX_FRAME_BYTES, MAX_MESSAGES_PER_SEND, RouterEndpoint
from awe.transport.messages import Heartbeat, JobDone, JobFailed, Message, decode
from awe.transport.sockets import context, encode
from awe.workers.worker import Worker


class RecordingEndpoint:
    """Stands in for the worker's socket: records each ZeroMQ message as the messages it held."""

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.sent: list[list[Message]] = []

    def encode(self, message: Message) -> bytes:
        return encode(message, self.max_frame_bytes)

    async def send(self, message: Message) -> None:
        self.sent.append([decode(self.encode(message))])

    async def send_frames(self, frames: list[bytes]) -> None:
        self.sent.append([decode(frame) for frame in frames])


def _done(job_id: str, delta: dict[str, object]) -> JobDone:
    return JobDone(job_id=job_id, run_id="r", delta=delta)


async def test_results_go_together_in_order_and_an_unencodable_one_is_replaced_where_it_stood() -> None:
    worker = Worker(connect="inproc://awe-test-send", graphs={}, worker_id="w-send", handle_signals=False)
    socket = worker.endpoint  # never used here: the recording stand-in takes its place
    try:
        worker.endpoint = RecordingEndpoint()  # type: ignore[assignment]
        batch = [_done("j1", {}), _done("j2", {}), _done("j3", {"n": 2**70}), _done("j4", {})]
        await worker._send_batch(batch)
        sent = [[(type(m).__name__, getattr(m, "job_id", None)) for m in message] for message in worker.endpoint.sent]
        assert sent == [
            [("JobDone", "j1"), ("JobDone", "j2")],
            [("JobFailed", "j3")],  # msgpack cannot pack 2**70: the run hears why, in its place
            [("JobDone", "j4")],
        ]

        small = RecordingEndpoint(max_frame_bytes=len(_done("k0", {"x": "y" * 100}).encode()) * 5 // 2)
        worker.endpoint = small  # type: ignore[assignment]
        await worker._send_batch([_done(f"k{i}", {"x": "y" * 100}) for i in range(3)])
        assert [len(message) for message in small.sent] == [2, 1]  # no ZeroMQ message over the frame limit
        assert [m.job_id for message in small.sent for m in message if isinstance(m, (JobDone, JobFailed))] == [
            "k0",
            "k1",
            "k2",
        ]
    finally:
        socket.close()


async def test_the_coordinator_yields_to_other_tasks_within_a_flood_of_messages_sent_together() -> None:
    """Counted by message, not by ZeroMQ message: 64 messages in one are 64 towards the yield."""
    router = RouterEndpoint("inproc://awe-test-batched-flood")
    worker = context().socket(zmq.DEALER)  # inproc: both sends are in the router's queue before it reads
    worker.setsockopt(zmq.LINGER, 0)
    try:
        worker.connect("inproc://awe-test-batched-flood")
        beat = Heartbeat(sender="w").encode()
        for _ in range(2):
            worker.send_multipart([beat] * MAX_MESSAGES_PER_SEND, zmq.NOBLOCK)
        ran_at: list[int] = []
        handled = 0

        async def other_task() -> None:
            ran_at.append(handled)

        asyncio.get_running_loop().create_task(other_task())
        for handled in range(1, 2 * MAX_MESSAGES_PER_SEND + 1):  # noqa: B007 - other_task reads it
            _, message = await router.recv()
            assert isinstance(message, Heartbeat)
        assert ran_at and ran_at[0] <= MAX_MESSAGES_PER_SEND + 1, ran_at  # not only once both were read
    finally:
        worker.close()
        router.close()
