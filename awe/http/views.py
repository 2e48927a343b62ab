"""REST handlers: parse the request, call the coordinator, serialise the answer. Nothing more."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from awe.coordinator.metrics import CONTENT_TYPE
from awe.coordinator.run_machine import RunStatus
from awe.http.keys import COORDINATOR
from awe.http.requests import (
    ForkRequest,
    IntQuery,
    ResumeRequest,
    RunRequest,
    TextQuery,
    graph_definition,
    json_object,
)
from awe.http.serialize import json_response, run_view, step_view

RUNS_LIMIT = IntQuery("limit", 50, 1, 1000, "how many runs, newest first (or oldest change first with since)")
RUNS_STATUS = TextQuery("status", "only runs with this status", tuple(s.value for s in RunStatus))
RUNS_GRAPH = TextQuery("graph_id", "only runs of this graph")
RUNS_SINCE = TextQuery(
    "since",
    "'' to start, then an answer's next_cursor: the runs changed after it, in order of change",
    # '' or updated_at|run_id; (?![\s\S]) is the end of the text, in Python's re and in ECMAScript's
    pattern=r"^(?:[^|]+\|[\s\S]*)?(?![\s\S])",
    refusal="must be '' or a next_cursor from an earlier answer",
)
HISTORY_CURSOR = IntQuery("cursor", 0, 0, 2**62, "the first entry to answer (an earlier answer's next_cursor)")
HISTORY_LIMIT = IntQuery("limit", 100, 1, 1000, "how many entries")


async def start_run(request: web.Request) -> web.Response:
    run = RunRequest.parse(json_object(await request.read()))
    record, created = await request.app[COORDINATOR].submit_run(
        run.graph_id,
        run.initial_state,
        run_id=run.run_id,
        max_steps=run.max_steps,
        version=run.version,
        pauses=run.pauses,
    )
    if run.wait is not None:
        final = await request.app[COORDINATOR].wait_for_end(record.run_id, run.wait)
        return json_response({**run_view(final), "created": created}, status=200 if final.finished_at else 202)
    answer = {
        "run_id": record.run_id,
        "status": record.status,
        "graph_id": record.graph_id,
        "graph_version": record.graph_version,
        "created": created,
    }
    return json_response(answer, status=202 if created else 200)


async def create_graph(request: web.Request) -> web.Response:
    definition = graph_definition(await request.read())
    version = await request.app[COORDINATOR].create_graph(definition)
    return json_response({"graph_id": version.graph_id, "version": version.version}, status=201)


async def delete_graph(request: web.Request) -> web.Response:
    graph_id = request.match_info["graph_id"]
    await request.app[COORDINATOR].delete_graph(graph_id)
    return json_response({"graph_id": graph_id, "deleted": True})


async def list_tools(request: web.Request) -> web.Response:
    return json_response({"tools": request.app[COORDINATOR].describe_tools()})


async def run_state(request: web.Request) -> web.Response:
    coordinator = request.app[COORDINATOR]
    record = await coordinator.get_run(request.match_info["run_id"])
    return json_response({**run_view(record), "forks": await coordinator.forks_of(record.run_id)})


async def resume_run(request: web.Request) -> web.Response:
    who = f"api ({request.remote})" if request.remote else "api"
    raw = await request.read()
    resume = ResumeRequest.parse(json_object(raw) if raw else {}, default_by=who)  # no body: resume as it is
    record = await request.app[COORDINATOR].resume_run(
        request.match_info["run_id"], state_update=resume.state_update, answer=resume.answer, by=resume.by
    )
    return json_response(run_view(record))


async def fork_run(request: web.Request) -> web.Response:
    fork = ForkRequest.parse(json_object(await request.read()))
    record = await request.app[COORDINATOR].fork_run(
        request.match_info["run_id"], step=fork.step, state_update=fork.state_update, new_run_id=fork.run_id
    )
    return json_response(run_view(record), status=201)


async def run_history(request: web.Request) -> web.Response:
    page = await request.app[COORDINATOR].history(
        request.match_info["run_id"],
        cursor=HISTORY_CURSOR.read(request),
        limit=HISTORY_LIMIT.read(request),
    )
    entries = [{**step_view(record), "state_after": state} for record, state in page["entries"]]
    next_cursor = page["next_cursor"]
    return json_response(
        {"run_id": page["run_id"], "steps": entries, "next_cursor": None if next_cursor is None else str(next_cursor)}
    )


async def cancel_run(request: web.Request) -> web.Response:
    record = await request.app[COORDINATOR].cancel_run(request.match_info["run_id"])
    return json_response(run_view(record))


async def run_steps(request: web.Request) -> web.Response:
    steps = await request.app[COORDINATOR].steps(request.match_info["run_id"])
    return json_response({"run_id": request.match_info["run_id"], "steps": [step_view(s) for s in steps]})


async def list_runs(request: web.Request) -> web.Response:
    """Newest first; with ``?since=CURSOR`` (``""`` to start), the runs changed after it, in order of change,
    and ``next_cursor`` to ask again: how a client follows many runs without polling each."""
    since = RUNS_SINCE.read(request)
    cursor = _cursor(since) if since is not None else None
    runs = await request.app[COORDINATOR].list_runs(
        status=RUNS_STATUS.read(request),
        graph_id=RUNS_GRAPH.read(request),
        limit=RUNS_LIMIT.read(request),
        since=cursor,
    )
    body: dict[str, Any] = {"runs": [run_view(r, with_state=False) for r in runs]}
    if cursor is not None:
        body["next_cursor"] = f"{runs[-1].updated_at}|{runs[-1].run_id}" if runs else since
    return json_response(body)


def _cursor(text: str) -> tuple[str, str]:
    """``updated_at|run_id`` as ``next_cursor`` gives it (``RUNS_SINCE`` has checked it); ``""``: from the start."""
    updated_at, _, run_id = text.partition("|")
    return (updated_at, run_id)


async def list_graphs(request: web.Request) -> web.Response:
    return json_response({"graphs": request.app[COORDINATOR].describe_graphs()})


async def get_graph(request: web.Request) -> web.Response:
    return json_response(request.app[COORDINATOR].describe_graph(request.match_info["graph_id"]))


async def list_workers(request: web.Request) -> web.Response:
    return json_response({"workers": request.app[COORDINATOR].describe_workers()})


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[COORDINATOR].metrics.render(), headers={"Content-Type": CONTENT_TYPE})


async def health(request: web.Request) -> web.Response:
    report = request.app[COORDINATOR].health()
    return json_response(report, status=200 if report["status"] == "ok" else 503)
