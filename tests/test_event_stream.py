"""The WebSocket log stream: late clients and ``?since=`` get exactly the missing events."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket

from engine import InProcessEngine


async def test_late_client_gets_every_event_once_in_order(engine: InProcessEngine) -> None:
    run_id = await engine.start_run("counter_loop", {"count": 0, "target": 5})
    await engine.wait_finished(run_id)
    late = await engine.ws_events(run_id)
    assert [e["seq"] for e in late] == list(range(1, len(late) + 1))
    assert late[-1]["event"] == "run_completed"
    assert sum(e["event"] == "node_completed" for e in late) == 5


async def test_since_resumes_after_the_given_sequence_number(engine: InProcessEngine) -> None:
    run_id = await engine.start_run("counter_loop", {"count": 0, "target": 4})
    await engine.wait_finished(run_id)
    everything = await engine.ws_events(run_id)
    resumed = await engine.ws_events(run_id, since=5)
    assert resumed == everything[5:]
    assert await engine.ws_events(run_id, since=everything[-1]["seq"]) == []


async def test_client_joining_mid_run_sees_no_gap_and_no_duplicate(engine: InProcessEngine) -> None:
    # A run that takes a while: 12 log lines 50 ms apart.
    run_id = await engine.start_run("chatty", {"lines": 12, "pause": 0.05})
    first_part: list[dict] = []
    assert engine.session is not None
    async with engine.session.ws_connect(f"{engine.url}/ws/logs/{run_id}") as ws:
        async for msg in ws:
            first_part.append(msg.json())
            if sum(e["event"] == "node_log" for e in first_part) == 3:
                break  # disconnect while the run is still going
    rest = await engine.ws_events(run_id, since=first_part[-1]["seq"])
    combined = first_part + rest
    assert [e["seq"] for e in combined] == list(range(1, len(combined) + 1))
    assert [e["fields"]["item"] for e in combined if e["event"] == "node_log"] == list(range(12))
    assert combined[-1]["event"] == "run_completed"
    # and the whole stream read afterwards is the same
    assert await engine.ws_events(run_id) == combined


def _stalled_websocket(engine: InProcessEngine, run_id: str) -> tuple[socket.socket, bytes]:
    """A WebSocket client that completes the handshake and then reads nothing, with a tiny receive buffer.

    A plain blocking socket: nothing reads it in the background, so the server's writes back up.
    Returns the socket and any bytes received after the handshake's headers. Call it in a thread:
    it blocks until the server, which may run on the test's event loop, answers.
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", engine.http_port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws/logs/{run_id} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(4096)
    head, rest = received.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock, rest


def _read_to_end(sock: socket.socket) -> bytes:
    sock.settimeout(30)
    chunks = []
    while chunk := sock.recv(1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def _read_frames(data: bytes) -> list[dict]:
    """Decode the unmasked server-to-client text frames in ``data`` (ignoring a final close frame)."""
    events, i = [], 0
    while i < len(data):
        opcode, length = data[i] & 0x0F, data[i + 1] & 0x7F
        i += 2
        if length == 126:
            length, i = int.from_bytes(data[i : i + 2], "big"), i + 2
        elif length == 127:
            length, i = int.from_bytes(data[i : i + 8], "big"), i + 8
        if opcode == 0x1:
            events.append(json.loads(data[i : i + length]))
        i += length
    return events


async def test_a_stalled_client_does_not_hold_the_run_back_and_catches_up_later(engine: InProcessEngine) -> None:
    # More events than a live feed buffers (1024) and more bytes than the sockets hold,
    # while one client reads nothing at all.
    run_id = await engine.start_run("chatty", {"lines": 3000, "pad": 2000})
    sock, early = await asyncio.to_thread(_stalled_websocket, engine, run_id)
    try:
        readers = await asyncio.gather(*(engine.ws_events(run_id) for _ in range(3)))
        final = await engine.wait_finished(run_id)
        assert final["status"] == "completed"
        for events in readers:
            assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
            assert events[-1]["event"] == "run_completed"
        # Only now does the stalled client read: it still gets every event once, in order.
        late = _read_frames(early + await asyncio.to_thread(_read_to_end, sock))
        assert late == readers[0]
        assert sum(e["event"] == "node_log" for e in late) == 3000
    finally:
        sock.close()
