"""Build the aiohttp application around a started coordinator.

The application owns only HTTP things: its routes (the table in
:mod:`awe.http.routes`, which is also what ``/openapi.json`` describes), its error middleware, and
the open WebSockets, which it closes when it shuts down. The process that
built the coordinator starts and stops it (:mod:`awe.cli.coordinator_process`).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from awe.coordinator.coordinator import Coordinator
from awe.http import openapi
from awe.http.keys import COORDINATOR, OPENAPI, STREAMS, OpenStream
from awe.http.middlewares import errors_as_json, ids_checked
from awe.http.routes import ROUTES
from awe.http.routing import Route, register
from awe.http.security import MIDDLEWARES, POLICY, PUBLIC_RESOURCES, ApiPolicy
from awe.http.websocket import CLOSE_TIMEOUT


def create_app(
    coordinator: Coordinator, routes: tuple[Route, ...] = ROUTES, *, policy: ApiPolicy | None = None
) -> web.Application:
    """The API on ``coordinator``: every route of ``routes``, and their OpenAPI description at /openapi.json.

    ``policy``: who may call it (the token, the allowed hosts and origins; see :mod:`awe.http.security`),
    by default from the coordinator's settings without a token.
    """
    settings = coordinator.settings
    policy = policy if policy is not None else ApiPolicy.from_settings(settings, token=None)
    app = web.Application(
        middlewares=[*MIDDLEWARES, errors_as_json, ids_checked], client_max_size=settings.max_body_bytes
    )
    app[POLICY] = policy
    app[COORDINATOR] = coordinator
    app[STREAMS] = set()
    app[OPENAPI] = openapi.describe(
        routes, authenticated=policy.token is not None, max_body_bytes=settings.max_body_bytes
    )
    app[PUBLIC_RESOURCES] = register(app, routes)
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
