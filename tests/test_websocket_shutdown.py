"""A coordinator that stops closes every open event stream itself, with 1001 and a full handshake.

Closed from another task, aiohttp drops the connection before the client's close frame, and an
aiohttp client reports 1006; the server asks each stream's own handler to close instead.
"""

from __future__ import annotations

import asyncio
import signal

import aiohttp
from engine import Engine


async def test_clients_of_a_stopping_coordinator_get_going_away_1001(bare_engine: Engine) -> None:
    await bare_engine.start(workers=1)
    run_id = await bare_engine.start_run("slow", {"seconds": 1})
    assert bare_engine.session is not None and bare_engine.coordinator is not None
    async with bare_engine.session.ws_connect(f"{bare_engine.url}/ws/logs/{run_id}") as ws:
        while (await asyncio.wait_for(ws.receive(), 10)).json()["event"] != "node_started":
            pass
        bare_engine.send_signal(bare_engine.coordinator, signal.SIGTERM)
        while True:  # read as a client with a deadline per message would
            message = await asyncio.wait_for(ws.receive(), 20)
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                break
        assert ws.close_code == 1001, (message, ws.close_code)
    assert await bare_engine.wait_exit(bare_engine.coordinator, timeout=30) == 0
