"""Build the aiohttp application around a started coordinator.

The application owns only HTTP things: its routes, its error middleware, and
the open WebSockets, which it closes when it shuts down. The process that
built the coordinator starts and stops it (:mod:`awe.cli.coordinator_process`).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from awe.coordinator.coordinator import Coordinator
from awe.http import views, websocket
from awe.http.keys import COORDINATOR, STREAMS, OpenStream
from awe.http.middlewares import errors_as_json
from awe.http.page import add_page_routes
from awe.http.websocket import CLOSE_TIMEOUT


def create_app(coordinator: Coordinator) -> web.Application:
    app = web.Application(middlewares=[errors_as_json], client_max_size=16 * 1024 * 1024)
    app[COORDINATOR] = coordinator
    app[STREAMS] = set()
    app.router.add_post("/graph/run", views.start_run)
    app.router.add_get("/graph/state/{run_id}", views.run_state)
    app.router.add_get("/graphs", views.list_graphs)
    app.router.add_get("/graphs/{graph_id}", views.get_graph)
    app.router.add_delete("/graphs/{graph_id}", views.delete_graph)
    app.router.add_post("/graph/create", views.create_graph)
    app.router.add_get("/tools", views.list_tools)
    app.router.add_get("/runs", views.list_runs)
    app.router.add_get("/runs/{run_id}", views.run_state)
    app.router.add_get("/runs/{run_id}/steps", views.run_steps)
    app.router.add_post("/runs/{run_id}/cancel", views.cancel_run)
    app.router.add_post("/runs/{run_id}/resume", views.resume_run)
    app.router.add_post("/runs/{run_id}/fork", views.fork_run)
    app.router.add_get("/runs/{run_id}/history", views.run_history)
    app.router.add_get("/workers", views.list_workers)
    app.router.add_get("/healthz", views.health)
    app.router.add_get("/metrics", views.metrics)
    app.router.add_get("/ws/logs/{run_id}", websocket.run_logs)
    add_page_routes(app)
    app.on_shutdown.append(_close_websockets)
    return app


async def _close_websockets(app: web.Application) -> None:
    """Ask every open event stream to close with 1001, and give them the close handshake's time."""
    open_streams: set[OpenStream] = app[STREAMS]
    streams = list(open_streams)
    for stream in streams:
        stream.going_away.set()
    if streams:
        closed = [asyncio.ensure_future(stream.closed.wait()) for stream in streams]
        _, pending = await asyncio.wait(closed, timeout=2 * CLOSE_TIMEOUT + 1)
        for waiter in pending:
            waiter.cancel()
