"""``/ws/logs/{run_id}``: a run's events, from the first (or ``?since=N``) to the last.

The sender subscribes to live events *before* it reads the stored ones and
skips any sequence number it has already sent, so an event committed while it
reads appears exactly once. The live feed is bounded: a client too slow to
keep up loses its place in the feed (never the engine's time) and catches up
from the database instead. While the sender works, the handler reads the
socket, so a client that goes away is noticed at once.
"""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import WSCloseCode, web

from awe.coordinator import FINAL_EVENTS, Coordinator
from awe.http.keys import COORDINATOR, WEBSOCKETS
from awe.http.views import _int_query

log = structlog.get_logger("awe.http.ws")


async def run_logs(request: web.Request) -> web.StreamResponse:
    coordinator = request.app[COORDINATOR]
    run_id = request.match_info["run_id"]
    since = _int_query(request, "since", 0, 0, 2**62)
    await coordinator.get_run(run_id)  # an unknown run is a 404 before any upgrade

    ws = web.WebSocketResponse(heartbeat=20.0)
    await ws.prepare(request)
    request.app[WEBSOCKETS].add(ws)
    sender = asyncio.create_task(_send_events(coordinator, ws, run_id, since))
    try:
        async for _ in ws:  # clients have nothing to say; reading notices when they leave
            pass
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
    return ws


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
        await ws.close(code=WSCloseCode.OK, message=b"run finished")
    except ConnectionResetError as exc:
        log.info("ws_client_gone", run_id=run_id, reason=str(exc))
    finally:
        subscription.close()
