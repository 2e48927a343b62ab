"""Typed keys for what the application stores."""

from __future__ import annotations

import weakref

from aiohttp import web

from awe.coordinator.coordinator import Coordinator

COORDINATOR = web.AppKey("coordinator", Coordinator)
WEBSOCKETS = web.AppKey("websockets", weakref.WeakSet[web.WebSocketResponse])
