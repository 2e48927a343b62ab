"""What the API answers, as JSON Schemas (draft 2020-12, OpenAPI 3.1's dialect).

These describe the bodies :mod:`awe.http.views` builds (with :mod:`awe.http.serialize`)
and :mod:`awe.http.middlewares` sends for errors; the OpenAPI description publishes them
under ``components/schemas`` and ``tests/test_openapi.py`` checks real answers of every
endpoint against them. A key a view adds must be added here; every key listed under
``required`` is in every answer. Objects stay open (no ``additionalProperties: false``),
so a client written against this description keeps working when a field is added.
"""

from __future__ import annotations

from awe.coordinator.run_machine import RunStatus
from awe.http.requests import JsonSchema

TIMESTAMP: JsonSchema = {"type": "string", "description": "ISO-8601 UTC, e.g. 2026-11-30T18:00:00.000000Z"}
OPTIONAL_TIMESTAMP: JsonSchema = {**TIMESTAMP, "type": ["string", "null"]}
ANY_OBJECT: JsonSchema = {"type": "object"}


def ref(name: str) -> JsonSchema:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, JsonSchema], *, description: str, optional: tuple[str, ...] = ()) -> JsonSchema:
    """An object with these properties, all of them required except ``optional``."""
    return {
        "type": "object",
        "description": description,
        "required": [name for name in properties if name not in optional],
        "properties": properties,
    }


RUN_FIELDS: dict[str, JsonSchema] = {
    "run_id": {"type": "string"},
    "graph_id": {"type": "string"},
    "graph_version": {"type": "integer", "minimum": 1},
    "status": {"type": "string", "enum": [s.value for s in RunStatus]},
    "current_node": {"type": ["string", "null"], "description": "the node the run is at, or last was"},
    "pending": {
        "type": "array",
        "items": {"type": "string"},
        "description": "the current step's branches still to finish",
    },
    "pause": {
        "oneOf": [{"type": "null"}, ref("Pause")],
        "description": "why a paused run waits for a person; null unless paused",
    },
    "forked_from": {
        "type": ["object", "null"],
        "description": "for a fork: the run, the step and the state keys it was forked from",
    },
    "step_count": {"type": "integer", "minimum": 0, "description": "steps completed"},
    "error": {
        "type": ["object", "null"],
        "description": "why the run failed: node, type, message, traceback (and more for some errors)",
    },
    "created_at": TIMESTAMP,
    "started_at": OPTIONAL_TIMESTAMP,
    "updated_at": TIMESTAMP,
    "finished_at": OPTIONAL_TIMESTAMP,
}

STEP_FIELDS: dict[str, JsonSchema] = {
    "step": {"type": "integer", "minimum": 0, "description": "the superstep: parallel branches share it"},
    "branch": {"type": "string", "description": "the node's name, or node[i] for its i-th Send"},
    "node": {"type": "string"},
    "attempt": {"type": "integer", "minimum": 1},
    "status": {"type": "string", "description": "completed, failed, lost (or what a resume recorded)"},
    "worker_id": {"type": ["string", "null"]},
    "started_at": TIMESTAMP,
    "finished_at": TIMESTAMP,
    "duration_ms": {"type": "number", "minimum": 0},
    "delta": {"type": "object", "description": "the state keys the node wrote"},
    "removed": {"type": "array", "items": {"type": "string"}},
    "route": {"description": "a router's answer, if the node has one (any JSON value)"},
    "error": {"type": ["object", "null"]},
}

NODE: JsonSchema = _object(
    {
        "name": {"type": "string"},
        "async": {"type": "boolean"},
        "takes_context": {"type": "boolean"},
        "retry": {"type": "object", "description": "max_attempts, backoff, factor, max_backoff, jitter, retry_on"},
        "timeout": {"type": ["number", "null"], "description": "seconds"},
        "inline": {"type": "boolean", "description": "a sync node run on the worker's event loop (absent: false)"},
    },
    description="One node of a graph.",
    optional=("inline",),
)

GRAPH_FIELDS: dict[str, JsonSchema] = {
    "graph_id": {"type": "string"},
    "entry_point": {"type": "string"},
    "nodes": {"type": "array", "items": NODE},
    "edges": {
        "type": "array",
        "items": _object({"source": {"type": "string"}, "target": {"type": "string"}}, description="An edge."),
    },
    "joins": {
        "type": "array",
        "items": _object(
            {"sources": {"type": "array", "items": {"type": "string"}}, "target": {"type": "string"}},
            description="The target runs once every source has.",
        ),
    },
    "reducers": {"type": "object", "additionalProperties": {"type": "string"}},
    "interrupt_before": {"type": "array", "items": {"type": "string"}},
    "interrupt_after": {"type": "array", "items": {"type": "string"}},
    "pause_on_error": {"type": "boolean"},
    "conditional_edges": {
        "type": "array",
        "items": _object(
            {
                "source": {"type": "string"},
                "router": {"type": "string"},
                "branches": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            description="After the source node, its router's answer picks the branch.",
        ),
    },
    "fingerprint": {"type": "string"},
    "version": {"type": "integer", "minimum": 1},
    "source": {"type": "string", "enum": ["python", "json"]},
    "created_at": TIMESTAMP,
}

ACCEPTED_FIELDS = ("run_id", "status", "graph_id", "graph_version")
"""What ``POST /graph/run`` always answers (with ``created``); with ``"wait": true``, the rest of a run too."""

COMPONENTS: dict[str, JsonSchema] = {
    "Error": _object(
        {"error": {"type": "string", "description": "what is wrong, and what to do about it"}},
        description="Every error the API answers.",
    ),
    "InvalidGraph": _object(
        {
            "error": {"type": "string"},
            "problems": {
                "type": "array",
                "items": _object(
                    {
                        "path": {"type": "string", "description": "a JSON pointer into the definition"},
                        "message": {"type": "string"},
                    },
                    description="One problem of the definition.",
                ),
            },
        },
        description="A graph definition refused, with every problem found.",
        optional=("problems",),
    ),
    "Pause": _object(
        {
            "reason": {"type": "string", "enum": ["interrupt_before", "interrupt_after", "interrupt", "error"]},
            "node": {"type": "string"},
            "branches": {"type": "array", "items": {"type": "string"}},
            "payload": {"description": "a node's Interrupt question (reason interrupt)"},
            "error": {"type": "object", "description": "how the node failed (reason error)"},
        },
        description="Why a paused run waits for a person.",
        optional=("payload", "error"),
    ),
    "RunSummary": _object(RUN_FIELDS, description="A run, without its state."),
    "Run": _object({**RUN_FIELDS, "state": ANY_OBJECT}, description="A run with its state."),
    "RunWithForks": _object(
        {**RUN_FIELDS, "state": ANY_OBJECT, "forks": {"type": "array", "items": {"type": "string"}}},
        description="A run with its state and the ids of the runs forked from it.",
    ),
    "RunAccepted": _object(
        {
            **RUN_FIELDS,
            "state": ANY_OBJECT,
            "created": {"type": "boolean", "description": "false when a run with this run_id existed"},
        },
        description="The run queued (202), or the existing run of that run_id (200): run_id, status, graph_id, "
        'graph_version, created. With "wait": true, the whole run with its state: 200 once it has ended, '
        "202 if the wait ran out.",
        optional=tuple(name for name in (*RUN_FIELDS, "state") if name not in ACCEPTED_FIELDS),
    ),
    "Step": _object(STEP_FIELDS, description="One attempt at one branch of one step."),
    "HistoryStep": _object(
        {**STEP_FIELDS, "state_after": {"type": ["object", "null"]}},
        description="A step record and the state after it (null for a branch of the step under way).",
    ),
    "GraphSummary": _object(GRAPH_FIELDS, description="A graph's newest version."),
    "Graph": _object(
        {
            **GRAPH_FIELDS,
            "mermaid": {"type": "string", "description": "the graph as a Mermaid flowchart"},
            "definition": {"type": "object", "description": "a JSON graph's definition"},
            "versions": {
                "type": "array",
                "items": _object({"version": {"type": "integer"}, "created_at": TIMESTAMP}, description="One version."),
            },
        },
        description="A graph's newest version in full, and its versions.",
        optional=("definition",),
    ),
    "Tool": _object(
        {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "parameters": {"type": ["object", "null"], "description": "the args' JSON Schema (null: any)"},
            "workers": {"type": "integer", "minimum": 0, "description": "connected workers that have it"},
        },
        description="A tool JSON graphs can call.",
    ),
    "Worker": _object(
        {
            "worker_id": {"type": "string"},
            "pid": {"type": "integer"},
            "host": {"type": "string"},
            "capacity": {"type": "integer"},
            "async_capacity": {"type": "integer"},
            "in_flight": {"type": "integer"},
            "orphans": {"type": "integer"},
            "stuck_slots": {"type": "integer"},
            "jobs_done": {"type": "integer"},
            "graphs": {"type": "array", "items": {"type": "string"}},
            "connected_at": TIMESTAMP,
            "last_heartbeat": TIMESTAMP,
        },
        description="A connected worker.",
    ),
    "Health": _object(
        {
            "status": {"type": "string", "enum": ["ok", "stopping", "failed"]},
            "failed_tasks": {"type": "object", "additionalProperties": {"type": "string"}},
            "coordinator_id": {"type": "string"},
            "workers": {"type": "integer"},
            "free_slots": {"type": "integer"},
            "active_runs": {"type": "integer"},
            "queued_jobs": {"type": "integer"},
            "store_backlog": {"type": "integer"},
            "event_subscribers": {"type": "integer"},
        },
        description="The coordinator's health: 200 when ok, 503 while stopping or after a background task died.",
    ),
    "Event": _object(
        {
            "run_id": {"type": "string"},
            "seq": {"type": "integer", "minimum": 1},
            "time": TIMESTAMP,
            "event": {"type": "string"},
            "level": {"type": "string"},
            "node": {"type": ["string", "null"]},
            "worker": {"type": ["string", "null"]},
            "fields": {"type": "object"},
        },
        description="One message of /ws/logs/{run_id}.",
    ),
}
"""Named schemas; the route table refers to them with :func:`ref`."""
