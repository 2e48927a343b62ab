"""Typed keys for what the application stores, and the record of an open event stream."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from awe.coordinator.coordinator import Coordinator


@dataclass(eq=False)
class OpenStream:
    """One ``/ws/logs`` connection, so that a stopping server can ask its handler to close it.

    The handler must close the socket itself (closed from another task, aiohttp skips the
    close handshake): the server sets ``going_away`` and waits for ``closed``.
    """

    run_id: str
    going_away: asyncio.Event = field(default_factory=asyncio.Event)
    closed: asyncio.Event = field(default_factory=asyncio.Event)


COORDINATOR = web.AppKey("coordinator", Coordinator)
STREAMS = web.AppKey("streams", set[OpenStream])
OPENAPI = web.AppKey("openapi", dict[str, Any])
"""The OpenAPI description, written once when the application is built."""
