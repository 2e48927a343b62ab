"""Every route of the application, once: :func:`awe.http.app.create_app` registers them from
this table and :mod:`awe.http.openapi` describes them from it.

A new endpoint is a handler and a row here, with the answers it gives (each with the schema
of its body, from :mod:`awe.http.schemas`). A page or asset of the web interface is a row too,
tagged ``ui`` with the media types it answers: the description lists it like any route, and
the test that every route of the application is described covers it. (aiohttp's
``add_static`` is not used: a static folder is a prefix, not a route the table can describe;
a handler that serves the files of one folder by name is, see :mod:`awe.http.docs`.)
"""

from __future__ import annotations

from awe.http import docs, openapi, page, views, websocket
from awe.http.requests import FORK_REQUEST_SCHEMA, RESUME_REQUEST_SCHEMA, RUN_REQUEST_SCHEMA, JsonSchema
from awe.http.routing import Reply, Route, error_reply, errors, listing
from awe.http.schemas import ref

UNKNOWN_RUN = "no run has this id"
UNKNOWN_GRAPH = "no graph has this id (or this version)"
STOPPING = "the coordinator is stopping; try again once it is back"
TOO_LARGE = "the body is larger than --max-body-bytes, or the state larger than --max-state-bytes"
BUSY = "as many runs are unfinished (in all, or of this graph) as the engine allows; Retry-After says when to retry"

WEBSOCKET_UPGRADE: dict[str, JsonSchema] = {
    "Connection": {"type": "string", "enum": ["Upgrade"]},
    "Upgrade": {"type": "string", "enum": ["websocket"]},
    "Sec-WebSocket-Version": {"type": "string", "enum": ["13"]},
    "Sec-WebSocket-Key": {"type": "string", "pattern": "^[A-Za-z0-9+/]{21}[AQgw]==$"},
}
"""The headers of a WebSocket opening handshake (RFC 6455): the key is 16 random bytes in base64."""

RUN_WITH_FORKS = Reply("the run, with its state and the runs forked from it", ref("RunWithForks"))

ROUTES: tuple[Route, ...] = (
    # -- runs ---------------------------------------------------------------------------------
    Route(
        "POST",
        "/graph/run",
        views.start_run,
        "start_run",
        "Start a run of a graph",
        "runs",
        {
            200: Reply(
                'a run with this run_id existed ("created": false); or, with "wait": true, the run has ended',
                ref("RunAccepted"),
            ),
            202: Reply('the run is queued; or, with "wait": true, the wait ran out first', ref("RunAccepted")),
            **errors(
                e400="a field is invalid, or the initial state holds a value the engine cannot store",
                e404=UNKNOWN_GRAPH,
                e413=TOO_LARGE,
                e429=BUSY,
                e503=STOPPING,
            ),
        },
        body=RUN_REQUEST_SCHEMA,
        description="The run goes on in the background; follow it at `/ws/logs/{run_id}` or `/graph/state/{run_id}`.",
    ),
    Route(
        "GET",
        "/graph/state/{run_id}",
        views.run_state,
        "get_run_state",
        "A run: its status, where it is, its state",
        "runs",
        {200: RUN_WITH_FORKS, **errors(e404=UNKNOWN_RUN)},
    ),
    Route(
        "GET",
        "/runs",
        views.list_runs,
        "list_runs",
        "Recent runs, newest first; or the runs changed since a cursor",
        "runs",
        {
            200: Reply(
                "the runs (without their state); with since, also next_cursor",
                listing("runs", "RunSummary", optional=("next_cursor",), next_cursor={"type": "string"}),
            ),
            **errors(e400="a query parameter is invalid"),
        },
        query=(views.RUNS_STATUS, views.RUNS_GRAPH, views.RUNS_LIMIT, views.RUNS_SINCE),
        description="With `since` (`''` to start), the runs changed after the cursor, oldest change first, and "
        "a `next_cursor` to ask again: how a client follows many runs without polling each.",
    ),
    Route(
        "GET",
        "/runs/{run_id}",
        views.run_state,
        "get_run",
        "A run (the same as /graph/state/{run_id})",
        "runs",
        {200: RUN_WITH_FORKS, **errors(e404=UNKNOWN_RUN)},
    ),
    Route(
        "GET",
        "/runs/{run_id}/steps",
        views.run_steps,
        "list_run_steps",
        "Every node execution of a run",
        "runs",
        {
            200: Reply("each attempt at each branch of each step", listing("steps", "Step", run_id={"type": "string"})),
            **errors(e404=UNKNOWN_RUN),
        },
    ),
    Route(
        "GET",
        "/runs/{run_id}/history",
        views.run_history,
        "get_run_history",
        "A run's step records with the state after each",
        "runs",
        {
            200: Reply(
                "a page of the history; next_cursor is null on the last page",
                listing(
                    "steps",
                    "HistoryStep",
                    run_id={"type": "string"},
                    next_cursor={"type": ["string", "null"]},
                ),
            ),
            **errors(e400="a query parameter is invalid, or the run's history cannot be replayed", e404=UNKNOWN_RUN),
        },
        query=(views.HISTORY_CURSOR, views.HISTORY_LIMIT),
    ),
    Route(
        "POST",
        "/runs/{run_id}/cancel",
        views.cancel_run,
        "cancel_run",
        "Cancel an unfinished run",
        "runs",
        {
            200: Reply("the cancelled run; its state stays readable", ref("Run")),
            **errors(e404=UNKNOWN_RUN, e409="the run has already finished"),
        },
    ),
    Route(
        "POST",
        "/runs/{run_id}/resume",
        views.resume_run,
        "resume_run",
        "Go on with a paused run, optionally with an edited state or an answer",
        "runs",
        {
            200: Reply("the run, going on", ref("Run")),
            **errors(e404=UNKNOWN_RUN, e409="the run is not paused", e413=TOO_LARGE),
        },
        body=RESUME_REQUEST_SCHEMA,
        body_required=False,
    ),
    Route(
        "POST",
        "/runs/{run_id}/fork",
        views.fork_run,
        "fork_run",
        "Start a new run from the state after a step of this one",
        "runs",
        {
            201: Reply("the new run", ref("Run")),
            **errors(
                e400="a field is invalid, or the run has no such step",
                e404=UNKNOWN_RUN,
                e413=TOO_LARGE,
                e429=BUSY,
                e503=STOPPING,
            ),
        },
        body=FORK_REQUEST_SCHEMA,
    ),
    Route(
        "GET",
        "/ws/logs/{run_id}",
        websocket.run_logs,
        "stream_run_events",
        "A run's events over a WebSocket, from the first (or ?since=N) to the last",
        "runs",
        {
            101: Reply(
                "Switching to the WebSocket protocol: each message is one event (the Event schema); the server "
                'closes with 1000 "run finished" after the final event.',
                media_types=(),
            ),
            **errors(
                e400="not a WebSocket upgrade request, or since is invalid",
                e404=UNKNOWN_RUN,
                e429="as many event streams are open (in all, or of this run) as the server allows",
            ),
        },
        query=(websocket.SINCE, websocket.TOKEN),
        headers=WEBSOCKET_UPGRADE,
    ),
    # -- graphs ---------------------------------------------------------------------------------
    Route(
        "GET",
        "/graphs",
        views.list_graphs,
        "list_graphs",
        "Every graph's newest version",
        "graphs",
        {200: Reply("the graphs", listing("graphs", "GraphSummary"))},
    ),
    Route(
        "GET",
        "/graphs/{graph_id}",
        views.get_graph,
        "get_graph",
        "A graph in full: definition, Mermaid text, versions",
        "graphs",
        {200: Reply("the graph's newest version", ref("Graph")), **errors(e404=UNKNOWN_GRAPH)},
    ),
    Route(
        "DELETE",
        "/graphs/{graph_id}",
        views.delete_graph,
        "delete_graph",
        "Withdraw a JSON graph (every version)",
        "graphs",
        {
            200: Reply(
                "withdrawn",
                {
                    "type": "object",
                    "required": ["graph_id", "deleted"],
                    "properties": {"graph_id": {"type": "string"}, "deleted": {"const": True}},
                },
            ),
            **errors(e404=UNKNOWN_GRAPH, e409="runs of it are in flight, or it is defined in a Python module"),
        },
    ),
    Route(
        "POST",
        "/graph/create",
        views.create_graph,
        "create_graph",
        "Create a graph (or a new version of it) in the JSON graph language",
        "graphs",
        {
            201: Reply(
                "created",
                {
                    "type": "object",
                    "required": ["graph_id", "version"],
                    "properties": {"graph_id": {"type": "string"}, "version": {"type": "integer", "minimum": 1}},
                },
            ),
            400: Reply("the definition is refused; problems lists every problem found", ref("InvalidGraph")),
            **errors(e409="the id is a Python graph's", e503=STOPPING),
        },
        body=ref("GraphDefinition"),
    ),
    # -- the engine -------------------------------------------------------------------------------
    Route(
        "GET",
        "/tools",
        views.list_tools,
        "list_tools",
        "The tools JSON graphs can call",
        "engine",
        {200: Reply("the tools", listing("tools", "Tool"))},
    ),
    Route(
        "GET",
        "/workers",
        views.list_workers,
        "list_workers",
        "The connected workers",
        "engine",
        {200: Reply("the workers", listing("workers", "Worker"))},
    ),
    Route(
        "GET",
        "/healthz",
        views.health,
        "get_health",
        "Whether the coordinator is up",
        "engine",
        {
            200: Reply("ok", ref("Health")),
            503: Reply("stopping, or a background task died (failed_tasks names it)", ref("Health")),
        },
    ),
    Route(
        "GET",
        "/metrics",
        views.metrics,
        "get_metrics",
        "Prometheus metrics",
        "engine",
        {200: Reply("the Prometheus text format", {"type": "string"}, media_types=("text/plain",))},
    ),
    # -- this description --------------------------------------------------------------------------
    Route(
        "GET",
        "/openapi.json",
        openapi.openapi_json,
        "get_openapi",
        "This description of the API (OpenAPI 3.1)",
        "docs",
        {200: Reply("the OpenAPI document", {"type": "object"})},
    ),
    Route(
        "GET",
        "/docs",
        docs.docs_page,
        "get_docs",
        "Swagger UI over this description",
        "docs",
        {200: Reply("the page", {"type": "string"}, media_types=("text/html",))},
    ),
    Route(
        "GET",
        f"{docs.ASSETS_PATH}/{{name}}",
        docs.docs_asset,
        "get_docs_asset",
        "A file the Swagger UI page loads",
        "docs",
        {
            200: Reply("the file", media_types=("text/css", "text/javascript", "image/png")),
            404: error_reply("no such asset"),
        },
        path_values={"name": {"type": "string", "enum": list(docs.ASSET_NAMES)}},
    ),
    # -- the web page ------------------------------------------------------------------------------
    Route(
        "GET",
        "/",
        page.index,
        "get_page",
        "The web page: graphs, runs, and one run live",
        "ui",
        {
            200: Reply("the page", {"type": "string"}, media_types=("text/html",)),
            500: error_reply("the page is not built (run `npm ci && npm run build` in web/)"),
        },
    ),
    Route(
        "GET",
        "/ui/assets/{name}",
        page.asset,
        "get_page_asset",
        "A file the web page loads (its names change with its content)",
        "ui",
        {
            200: Reply(
                "the file",
                media_types=("text/javascript", "application/javascript", "text/css", "image/svg+xml"),
            ),
            404: error_reply("no such asset"),
        },
    ),
)
