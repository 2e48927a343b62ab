"""``/ws/logs/{run_id}``: a run's events, from the first (or ``?since=N``) to the last.

The sender subscribes to live events *before* it reads the stored ones and
skips any sequence number it has already sent, so an event committed while it
reads appears exactly once. The live feed is bounded: a client too slow to
keep up loses its place in the feed (never the engine's time) and catches up
from the database instead. While the sender works, a reader task reads the
socket, so a client that goes away is noticed at once.

The handler closes the socket itself, once the sender and the reader have both
stopped: only then does aiohttp's ``close()`` wait for the client's close frame.
Closed from another task while a read is pending, aiohttp sends its close frame
and drops the connection at once, and an aiohttp client whose reply then fails
reports 1006 instead of 1000.
"""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import WSCloseCode, web

from awe.coordinator.coordinator import Coordinator
from awe.coordinator.errors import TooBusy
from awe.coordinator.events import FINAL_EVENTS
from awe.http.keys import COORDINATOR, STREAMS, OpenStream
from awe.http.requests import IntQuery, TextQuery

log = structlog.get_logger("awe.http.ws")

SINCE = IntQuery("since", 0, 0, 2**62, "send the events after this one (0: from the first)")
TOKEN = TextQuery(
    "token",
    "the API token, for a client that cannot set the Authorization header of a WebSocket (a browser); "
    "the header is preferred, as a URL may be logged",
)

CLOSE_TIMEOUT = 5.0
"""How long the server waits for a client to answer its close frame before it drops the connection."""


async def run_logs(request: web.Request) -> web.StreamResponse:
    coordinator = request.app[COORDINATOR]
    run_id = request.match_info["run_id"]
    since = SINCE.read(request)
    await coordinator.get_run(run_id)  # an unknown run is a 404 before any upgrade
    _check_room(request.app[STREAMS], run_id, coordinator)

    ws = web.WebSocketResponse(heartbeat=20.0, timeout=CLOSE_TIMEOUT)
    await ws.prepare(request)
    stream = OpenStream(run_id)
    request.app[STREAMS].add(stream)
    try:
        await _serve(coordinator, ws, stream, since)
    finally:
        request.app[STREAMS].discard(stream)
        stream.closed.set()
    return ws


def _check_room(streams: set[OpenStream], run_id: str, coordinator: Coordinator) -> None:
    """:class:`TooBusy` (429) when the server, or this run, has as many open streams as it may keep."""
    settings = coordinator.settings
    if len(streams) >= settings.max_websockets:
        raise TooBusy(f"{len(streams)} event streams are open, the limit (--max-websockets); try again later")
    of_run = sum(1 for stream in streams if stream.run_id == run_id)
    if of_run >= settings.max_websockets_per_run:
        raise TooBusy(
            f"{of_run} event streams of run {run_id!r} are open, the limit (--max-websockets-per-run); "
            "close one or try again later"
        )


async def _serve(coordinator: Coordinator, ws: web.WebSocketResponse, stream: OpenStream, since: int) -> None:
    """Stream until the run ends, the client leaves or the server stops; then close from here."""
    sender = asyncio.create_task(_send_events(coordinator, ws, stream.run_id, since))
    reader = asyncio.create_task(_read_until_closed(ws))
    leaving = asyncio.create_task(stream.going_away.wait())
    try:
        await asyncio.wait((sender, reader, leaving), return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Neither task outlives the handler.
        for task in (sender, reader, leaving):
            task.cancel()
        sent, _, _ = await asyncio.gather(sender, reader, leaving, return_exceptions=True)
    if stream.going_away.is_set():
        await _close(ws, stream.run_id, WSCloseCode.GOING_AWAY, b"server shutting down")
    elif isinstance(sent, Exception):
        log.error("ws_sender_failed", run_id=stream.run_id, exc_info=sent)
        await _close(ws, stream.run_id, WSCloseCode.INTERNAL_ERROR, b"internal error")
    else:
        await _close(ws, stream.run_id, WSCloseCode.OK, b"run finished")  # a no-op if the client closed first


async def _read_until_closed(ws: web.WebSocketResponse) -> None:
    """Ignore what the client says: reading is how aiohttp answers its pings and notices it leave."""
    async for _ in ws:
        pass


async def _close(ws: web.WebSocketResponse, run_id: str, code: WSCloseCode, message: bytes) -> None:
    """Send our close frame, wait for the client's, then drop the connection, within a bound.

    aiohttp bounds the wait for the client's frame (``timeout=CLOSE_TIMEOUT``) but not the
    flush of ours to a client that stopped reading; the outer bound covers that too.
    """
    try:
        async with asyncio.timeout(2 * CLOSE_TIMEOUT):
            await ws.close(code=code, message=message)
    except TimeoutError:
        log.info("ws_close_timed_out", run_id=run_id)


async def _send_events(coordinator: Coordinator, ws: web.WebSocketResponse, run_id: str, since: int) -> None:
    subscription = coordinator.subscribe(run_id)
    last = since

    async def catch_up() -> bool:
        """Send stored events after ``last``; True once the run's final event has gone out."""
        nonlocal last
        while batch := await coordinator.events_after(run_id, last):
            for event in batch:
                await ws.send_json(event.to_json())
                last = event.seq
                if event.event in FINAL_EVENTS:
                    return True
        return False

    try:
        finished = await catch_up()
        if not finished and (await coordinator.get_run(run_id)).finished_at is not None:
            # Finished after our first read (send the rest), or the client asked for events
            # after the final one (nothing more will come): either way, this is the end.
            await catch_up()
            finished = True
        while not finished:
            if subscription.overflowed:
                subscription.reset()
                finished = await catch_up()
                continue
            event = await subscription.queue.get()
            if event.seq <= last:
                continue
            if event.seq > last + 1:  # a gap can only mean we were reset mid-read: fill it from the store
                finished = await catch_up()
                continue
            await ws.send_json(event.to_json())
            last = event.seq
            finished = event.event in FINAL_EVENTS
    except ConnectionResetError as exc:
        log.info("ws_client_gone", run_id=run_id, reason=str(exc))
    finally:
        subscription.close()
