"""How records look in the API's JSON."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from awe import jsondata
from awe.store import RunRecord, StepRecord


def json_response(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer written by orjson (see :func:`awe.jsondata.to_json`): a 1 MB state is a final answer too."""
    return web.json_response(body, status=status, headers=headers, dumps=jsondata.to_json)


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
