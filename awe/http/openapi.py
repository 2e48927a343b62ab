"""The OpenAPI 3.1 description of the API, written from the route table; served at ``/openapi.json``.

OpenAPI 3.1 because its schemas are plain JSON Schema 2020-12: the request body schemas
the handlers validate with ``jsonschema`` (:mod:`awe.http.requests`), the JSON graph
language's ``graph.schema.json`` and the answers' schemas (:mod:`awe.http.schemas`) go in
as they are. Every route of the table is described; the few answers any route may give
are added to each: 400, 413 and 415 for a POST (not JSON, too large, not sent as JSON), 401 when the
server has a token (the ``bearer`` security scheme), 403 and 421 (a foreign origin or Host) and 500.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

import awe
from awe.graph.errors import GRAPH_ID_PATTERN
from awe.graph.json_graph import graph_schema
from awe.http.keys import OPENAPI
from awe.http.requests import RUN_ID_PATTERN, JsonSchema
from awe.http.routing import Route, error_reply
from awe.http.schemas import COMPONENTS

TAGS = [
    {"name": "runs", "description": "Start runs, follow them, pause, resume, fork and cancel them."},
    {"name": "graphs", "description": "The graphs the engine serves; create JSON graphs."},
    {"name": "engine", "description": "Workers, tools, health and metrics."},
    {"name": "docs", "description": "This description and its Swagger UI."},
    {"name": "ui", "description": "The web page and its assets."},
]

_PATH_PARAMETER = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


def describe(
    routes: tuple[Route, ...], *, authenticated: bool = False, max_body_bytes: int = 16_000_000
) -> dict[str, Any]:
    """The whole OpenAPI document for these routes; ``authenticated``: the server requires a bearer token."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        path = _PATH_PARAMETER.sub(r"{\1}", route.path)
        paths.setdefault(path, {})[route.method.lower()] = _operation(route, authenticated, max_body_bytes)
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "awe, the Agent Workflow Engine",
            "version": awe.__version__,
            "description": (
                "Run stateful agent graphs durably on a pool of worker processes. Every error is a JSON "
                'body `{"error": "..."}` with a 4xx or 5xx status; a refused request stores nothing.'
            ),
        },
        "tags": [tag for tag in TAGS if any(route.tag == tag["name"] for route in routes)],
        "paths": paths,
        "components": {
            "schemas": {**COMPONENTS, "GraphDefinition": graph_definition_schema()},
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The API token (awe coordinator --token-file or AWE_TOKEN). A WebSocket may "
                    "send it as the token query parameter instead. Required only when the server has one.",
                }
            },
        },
    }
    if authenticated:
        document["security"] = [{"bearer": []}]
    return document


def _operation(route: Route, authenticated: bool, max_body_bytes: int) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.summary,
        "tags": [route.tag],
        "responses": _responses(route, authenticated, max_body_bytes),
    }
    if route.public:
        operation["security"] = []
    if route.description:
        operation["description"] = route.description
    parameters = [_path_parameter(route, name) for name in _PATH_PARAMETER.findall(route.path)]
    parameters += [
        {"name": q.name, "in": "query", "required": False, "description": q.description, "schema": q.schema()}
        for q in route.query
    ]
    parameters += [
        {"name": name, "in": "header", "required": True, "schema": schema}
        for name, schema in (route.headers or {}).items()
    ]
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {
            "required": route.body_required,
            "content": {"application/json": {"schema": route.body}},
        }
    return operation


ID_SCHEMAS: dict[str, JsonSchema] = {
    # (?!\n)$ refuses the trailing newline $ accepts in Python's re; the ids_checked middleware enforces these.
    name: {"type": "string", "pattern": f"^{pattern.pattern}(?!\\n)$"}
    for name, pattern in (("run_id", RUN_ID_PATTERN), ("graph_id", GRAPH_ID_PATTERN))
}


def _path_parameter(route: Route, name: str) -> dict[str, Any]:
    schema = (route.path_values or {}).get(name, ID_SCHEMAS.get(name, {"type": "string"}))
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _responses(route: Route, authenticated: bool, max_body_bytes: int) -> dict[str, Any]:
    replies = dict(route.replies)
    if route.body is not None or route.method == "POST":
        replies.setdefault(400, error_reply("the body is not a JSON object, or a field is invalid"))
        replies.setdefault(413, error_reply(f"the body is larger than the server accepts ({max_body_bytes} bytes)"))
        replies.setdefault(415, error_reply("the body is not sent as Content-Type: application/json"))
    if authenticated and not route.public:
        replies.setdefault(401, error_reply("the API token is missing or wrong"))
    replies.setdefault(403, error_reply("sent from a page of another origin than --cors-origins allows"))
    replies.setdefault(421, error_reply("the Host header names a host this server does not answer for"))
    replies.setdefault(500, error_reply("an internal error; the coordinator's log has its traceback"))
    responses: dict[str, Any] = {}
    for status, reply in sorted(replies.items()):
        response: dict[str, Any] = {"description": reply.description}
        if reply.media_types:
            media = {"schema": reply.schema} if reply.schema is not None else {}
            response["content"] = {media_type: media for media_type in reply.media_types}
        responses[str(status)] = response
    return responses


def graph_definition_schema() -> JsonSchema:
    """``graph.schema.json`` as a component: its ``$defs`` references re-pointed to where it now lives."""
    text = json.dumps({k: v for k, v in graph_schema().items() if k not in ("$schema", "$id")})
    return dict(json.loads(text.replace('"#/$defs/', '"#/components/schemas/GraphDefinition/$defs/')))


async def openapi_json(request: web.Request) -> web.Response:
    """This document: every route of the API, its parameters, body and answers."""
    return web.json_response(request.app[OPENAPI])
