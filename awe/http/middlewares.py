"""Every error leaves the API as ``{"error": "..."}`` with the status that fits it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from awe.coordinator.errors import (
    RequestError,
    RunFinished,
    ShuttingDown,
    TooBusy,
    TooLarge,
    UnknownGraph,
    UnknownRun,
)
from awe.coordinator.graph_registry import GraphConflict, GraphInUse
from awe.coordinator.replay import ReplayError
from awe.coordinator.run_machine import NotPaused
from awe.graph.errors import GRAPH_ID_PATTERN
from awe.graph.json_graph import InvalidGraph
from awe.http.requests import RUN_ID_PATTERN, BadRequest

log = structlog.get_logger("awe.http")


STATUS_FOR: dict[type[Exception], int] = {
    BadRequest: 400,
    RequestError: 400,
    TooLarge: 413,
    UnknownGraph: 404,
    UnknownRun: 404,
    RunFinished: 409,
    GraphConflict: 409,
    GraphInUse: 409,
    NotPaused: 409,
    ReplayError: 400,
    ShuttingDown: 503,
}


PATH_IDS = {"run_id": ("run", RUN_ID_PATTERN), "graph_id": ("graph", GRAPH_ID_PATTERN)}
"""The ids a URL may carry, and their patterns: an id no run or graph can have is refused before any
handler, store query or log line sees it."""


@web.middleware
async def ids_checked(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    for name, (what, pattern) in PATH_IDS.items():
        value = request.match_info.get(name)
        if value is not None and not pattern.fullmatch(value):
            shown = value if len(value) <= 80 else f"{value[:77]}..."
            return json_error(404, f"no {what} has the id {shown!r}: {what} ids match {pattern.pattern}")
    return await handler(request)


def json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def errors_as_json(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        default_text = f"{exc.status}: {exc.reason}"
        response = json_error(exc.status, exc.reason if exc.text in (None, default_text) else exc.text)
        if "Allow" in exc.headers:  # a 405 says which methods the path takes (RFC 9110)
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except TooBusy as exc:
        return web.json_response(
            {"error": str(exc)}, status=429, headers={"Retry-After": str(TooBusy.RETRY_AFTER_SECONDS)}
        )
    except InvalidGraph as exc:
        problems = [{"path": p.path, "message": p.message} for p in exc.problems]
        return web.json_response({"error": str(exc), "problems": problems}, status=400)
    except tuple(STATUS_FOR) as exc:
        return json_error(STATUS_FOR[type(exc)], str(exc))
    except Exception:
        log.exception("request_failed", method=request.method, path=request.path)
        return json_error(500, "internal error; see the coordinator log")
