"""The log stream ends with a complete closing handshake, whatever the client.

The server sends its close frame (1000, "run finished"), waits a bounded time
for the client's, and only then hangs up. A server that hangs up at once makes
an aiohttp client whose answer then fails report 1006 instead of 1000. A
client that leaves first, politely or not, must leave nothing running behind.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from engine import InProcessEngine
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedOK

from awe.http.websocket import CLOSE_TIMEOUT

TIMEOUT = 30.0
"""Bound on any one wait: a broken server fails the test instead of hanging it."""

CLOSE_FRAME = (1000).to_bytes(2, "big") + b"run finished"
TEXT, CLOSE = 0x1, 0x8


@pytest.fixture(params=["live", "finished"])
async def ten_steps(request: pytest.FixtureRequest, engine: InProcessEngine) -> str:
    """A run of ten node executions, read while it runs (connect right after the start) or once it is over."""
    run_id = await engine.start_run("counter_loop", {"count": 0, "target": 10})
    if request.param == "finished":
        await engine.wait_finished(run_id)
    return run_id


@pytest.fixture
async def slow_run(engine: InProcessEngine) -> AsyncIterator[str]:
    """A run whose only node sleeps for the whole test, cancelled afterwards so the engine stops at once.

    Once its client has the node's ``node_log`` event, the handler has nothing left to send: only
    the client leaving can stop it.
    """
    run_id = await engine.start_run("slow", {"seconds": 10 * TIMEOUT})
    yield run_id
    await engine.request("POST", f"/runs/{run_id}/cancel")


def logs_url(engine: InProcessEngine, run_id: str, scheme: str = "http") -> str:
    return f"{engine.url.replace('http', scheme, 1)}/ws/logs/{run_id}"


def assert_whole_run(events: list[dict[str, Any]]) -> None:
    """The close tests are only worth something if the stream before the close was complete."""
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["event"] == "run_completed"


async def event_subscribers(engine: InProcessEngine) -> int:
    status, body = await engine.request("GET", "/healthz")
    assert status == 200, body
    return int(body["event_subscribers"])


async def wait_no_subscribers(engine: InProcessEngine) -> None:
    """Every handler's sender stopped and closed its subscription to the event bus."""

    async def none_left() -> bool:
        return await event_subscribers(engine) == 0

    await engine.wait_until(none_left, what="the WebSocket subscriptions to close", timeout=TIMEOUT)


async def assert_server_still_streams(engine: InProcessEngine) -> None:
    run_id = await engine.start_run("counter_loop", {"count": 0, "target": 3})
    assert_whole_run(await engine.ws_events(run_id, timeout=TIMEOUT))


class RawClient:
    """A WebSocket client by hand, to control what it answers and how it leaves."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, engine: InProcessEngine, run_id: str) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", engine.http_port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /ws/logs/{run_id} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    async def read_frame(self) -> tuple[int, bytes]:
        """One unmasked, unfragmented server frame: (opcode, payload)."""
        async with asyncio.timeout(TIMEOUT):
            first, second = await self.reader.readexactly(2)
            length = second & 0x7F
            if length >= 126:
                length = int.from_bytes(await self.reader.readexactly(2 if length == 126 else 8), "big")
            return first & 0x0F, await self.reader.readexactly(length)

    async def read_until_close(self) -> tuple[list[dict[str, Any]], bytes]:
        """The events, then the payload of the server's close frame."""
        events = []
        while (frame := await self.read_frame())[0] != CLOSE:
            assert frame[0] == TEXT, frame
            events.append(json.loads(frame[1]))
        return events, frame[1]

    async def read_until_event(self, name: str) -> None:
        """Skip the events up to and including the first one called ``name``."""
        while True:
            opcode, payload = await self.read_frame()
            assert opcode == TEXT, (opcode, payload)
            if json.loads(payload)["event"] == name:
                return

    def send_close(self) -> None:
        payload, mask = (1000).to_bytes(2, "big"), os.urandom(4)
        masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
        self.writer.write(bytes([0x80 | CLOSE, 0x80 | len(payload)]) + mask + masked)

    async def hung_up(self) -> bool:
        """True if the server closed the connection without sending anything more."""
        return await self.reader.read(1) == b""

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


OpenRawClient = Callable[[str], Awaitable[RawClient]]


@pytest.fixture
async def raw_client(engine: InProcessEngine) -> AsyncIterator[OpenRawClient]:
    """Connect with ``await raw_client(run_id)``; every client is closed after the test."""
    clients: list[RawClient] = []

    async def open_client(run_id: str) -> RawClient:
        clients.append(await RawClient.connect(engine, run_id))
        return clients[-1]

    yield open_client
    for client in clients:
        await client.close()


# -- every kind of client sees 1000 at the end of a run --------------------------------------------


async def read_with_wait_for(
    engine: InProcessEngine, run_id: str
) -> tuple[list[dict[str, Any]], aiohttp.WSMessage, int | None]:
    """The way that saw 1006: each read in its own ``wait_for``, until a message that is not an event."""
    assert engine.session is not None
    events = []
    async with engine.session.ws_connect(logs_url(engine, run_id)) as ws:
        while (msg := await asyncio.wait_for(ws.receive(), TIMEOUT)).type == aiohttp.WSMsgType.TEXT:
            events.append(msg.json())
    return events, msg, ws.close_code


async def test_aiohttp_client_reading_with_wait_for_sees_1000(engine: InProcessEngine, ten_steps: str) -> None:
    # Several clients at once: against a server that hangs up too early, each sees 1006 often, not always.
    for events, last, close_code in await asyncio.gather(*(read_with_wait_for(engine, ten_steps) for _ in range(4))):
        assert (last.type, last.data, last.extra) == (aiohttp.WSMsgType.CLOSE, 1000, "run finished")
        assert close_code == 1000
        assert_whole_run(events)


async def test_aiohttp_client_iterating_sees_1000(engine: InProcessEngine, ten_steps: str) -> None:
    assert engine.session is not None
    async with engine.session.ws_connect(logs_url(engine, ten_steps)) as ws:
        async with asyncio.timeout(TIMEOUT):
            events = [msg.json() async for msg in ws]
        assert ws.close_code == 1000
    assert_whole_run(events)


async def test_websockets_client_sees_1000(engine: InProcessEngine, ten_steps: str) -> None:
    events = []
    async with asyncio.timeout(TIMEOUT), connect(logs_url(engine, ten_steps, "ws")) as ws:
        with pytest.raises(ConnectionClosedOK) as closed:
            while True:
                events.append(json.loads(await ws.recv()))
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1000, "run finished")
    assert ws.close_code == 1000
    assert_whole_run(events)


# -- the server's side of the handshake -----------------------------------------------------------


async def test_the_server_waits_for_the_clients_close_frame_before_hanging_up(
    engine: InProcessEngine, raw_client: OpenRawClient
) -> None:
    run_id = await engine.start_run("counter_loop", {"count": 0, "target": 3})
    await engine.wait_finished(run_id)
    client = await raw_client(run_id)
    events, close = await client.read_until_close()
    assert_whole_run(events)
    assert close == CLOSE_FRAME
    # Nothing signals "still waiting for you": give a server that hangs up at once a moment to do so.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(client.hung_up(), 0.5)
    client.send_close()
    assert await asyncio.wait_for(client.hung_up(), TIMEOUT)


async def test_a_client_that_never_answers_the_close_is_dropped_within_the_bound(
    engine: InProcessEngine, raw_client: OpenRawClient
) -> None:
    run_id = await engine.start_run("counter_loop", {"count": 0, "target": 3})
    client = await raw_client(run_id)
    events, close = await client.read_until_close()
    assert_whole_run(events)
    assert close == CLOSE_FRAME
    assert await asyncio.wait_for(client.hung_up(), 3 * CLOSE_TIMEOUT)
    await wait_no_subscribers(engine)


# -- clients that leave first ---------------------------------------------------------------------


async def test_a_client_closing_first_mid_run_gets_a_clean_close(engine: InProcessEngine, slow_run: str) -> None:
    assert engine.session is not None
    async with engine.session.ws_connect(logs_url(engine, slow_run)) as ws:
        async with asyncio.timeout(TIMEOUT):
            async for msg in ws:
                if msg.json()["event"] == "node_log":
                    break
        assert await event_subscribers(engine) == 1
        async with asyncio.timeout(TIMEOUT):
            await ws.close()  # our close frame, then the server's answer
        assert ws.close_code == 1000
    await wait_no_subscribers(engine)
    await assert_server_still_streams(engine)


async def test_a_client_vanishing_mid_run_leaves_nothing_behind(
    engine: InProcessEngine, slow_run: str, raw_client: OpenRawClient
) -> None:
    client = await raw_client(slow_run)
    await client.read_until_event("node_log")
    assert await event_subscribers(engine) == 1
    client.writer.transport.abort()  # the TCP connection is reset: no close frame, no answer to one
    await wait_no_subscribers(engine)
    await assert_server_still_streams(engine)
