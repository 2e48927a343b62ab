"""How records look in the API's JSON."""

from __future__ import annotations

import json
from typing import Any

import orjson
from aiohttp import web

from awe.store import RunRecord, StepRecord


def dumps(value: Any) -> str:
    """An answer's JSON text: orjson, which writes a 1 MB state some 25 times faster than ``json``.

    What orjson refuses (an integer past 64 bits, which the engine's checks keep out of states) the
    standard library still writes.
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value)


def json_response(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers, dumps=dumps)


def run_view(r: RunRecord, *, with_state: bool = True) -> dict[str, Any]:
    view: dict[str, Any] = {
        "run_id": r.run_id,
        "graph_id": r.graph_id,
        "graph_version": r.graph_version,
        "status": r.status,
        "current_node": r.current_node,
        "pending": [t["branch"] for t in r.plan.get("tasks", [])],
        "pause": r.plan.get("pause"),
        "forked_from": r.options.get("forked_from"),
        "step_count": r.step_count,
        "error": r.error,
        "created_at": r.created_at,
        "started_at": r.started_at,
        "updated_at": r.updated_at,
        "finished_at": r.finished_at,
    }
    if with_state:
        view["state"] = r.state
    return view


def step_view(s: StepRecord) -> dict[str, Any]:
    return {
        "step": s.step,
        "branch": s.branch,
        "node": s.node,
        "attempt": s.attempt,
        "status": s.status,
        "worker_id": s.worker_id,
        "started_at": s.started_at,
        "finished_at": s.finished_at,
        "duration_ms": s.duration_ms,
        "delta": s.delta,
        "removed": s.removed,
        "route": s.route,
        "error": s.error,
    }
