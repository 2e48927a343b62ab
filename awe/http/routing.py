"""What a route of the API says about itself: enough to register it and to describe it.

One :class:`Route` per method and path, in one table (:mod:`awe.http.routes`). The
application registers its handlers from the table and :mod:`awe.http.openapi` writes the
OpenAPI description from the same table, so a route of the table cannot be served without
being described, nor described with a body the handler does not validate (``body`` is the
very schema the handler's request type checks). A route added to the application any
other way is missing from the description, and ``tests/test_openapi.py`` says so.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from awe.http.requests import IntQuery, JsonSchema, TextQuery

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Reply:
    """One status a route answers: what it means and what its body is."""

    description: str
    schema: JsonSchema | None = None
    """The body's JSON Schema, or None for a body no schema describes (a file)."""
    media_types: tuple[str, ...] = ("application/json",)
    """The body's possible types; none for an answer without a body (a WebSocket upgrade)."""


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    """aiohttp's form, which is also OpenAPI's: ``/runs/{run_id}``."""
    handler: Handler
    name: str
    """The operation's id in the description: unique, a verb and what it acts on (``start_run``)."""
    summary: str
    tag: str
    """``runs``, ``graphs``, ``engine``, ``docs``, or ``ui`` for the web page and its assets."""
    replies: Mapping[int, Reply]
    body: JsonSchema | None = None
    """The request body's JSON Schema: the one the handler validates the body against."""
    body_required: bool = True
    query: tuple[IntQuery | TextQuery, ...] = ()
    path_values: Mapping[str, JsonSchema] | None = None
    """Schemas of the path's ``{parameters}`` (default: any text)."""
    headers: Mapping[str, JsonSchema] | None = None
    """Request headers the route requires (a WebSocket upgrade's), with their schemas."""
    description: str = ""
    """More than the summary says, in Markdown (Swagger UI shows it under the summary)."""

    @property
    def public(self) -> bool:
        """Answered without the API token: the health check, and the files of the web page and of /docs.

        Those files are the same for every installation and hold no data; a browser must load them before
        the page can ask for the token (the data they then fetch is not public)."""
        return self.tag in PUBLIC_TAGS or self.name in PUBLIC_OPERATIONS


PUBLIC_TAGS = frozenset({"docs", "ui"})
PUBLIC_OPERATIONS = frozenset({"get_health", "get_openapi"})


def register(app: web.Application, routes: tuple[Route, ...]) -> frozenset[web.AbstractResource]:
    """Add each route's handler to ``app``; a GET route answers HEAD too, as aiohttp's ``add_get`` does.

    Returns the resources (paths) of the public routes, which the token check lets through.
    """
    public: set[web.AbstractResource] = set()
    for route in routes:
        if route.method == "GET":
            added = app.router.add_get(route.path, route.handler)
        else:
            added = app.router.add_route(route.method, route.path, route.handler)
        if route.public and added.resource is not None:
            public.add(added.resource)
    return frozenset(public)


def error_reply(description: str) -> Reply:
    return Reply(description, {"$ref": "#/components/schemas/Error"})


def errors(**described: str) -> dict[int, Reply]:
    """``errors(e404="unknown run")``: the error replies of a route, each an ``{"error": ...}`` body."""
    return {int(key.removeprefix("e")): error_reply(text) for key, text in described.items()}


def json_reply(description: str, schema: JsonSchema) -> Reply:
    return Reply(description, schema)


def listing(key: str, item: str, *, optional: tuple[str, ...] = (), **more: Any) -> JsonSchema:
    """``{key: [item, ...]}`` and ``more`` properties, each required unless ``optional``."""
    properties = {key: {"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}}, **more}
    return {"type": "object", "required": [p for p in properties if p not in optional], "properties": properties}
