"""``awe run``, ``awe status``, ``awe runs``, ``awe workers``, ``awe logs``: the API from a terminal.

Each prints what a person wants to read (one line per event or run), and
exits 0 when things went well: ``awe run --follow`` exits 0 only if the run
completed, 1 if it failed, was cancelled or paused, 2 for a bad argument.
Events come over the run's WebSocket, the same stream any client gets.
"""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import aiohttp

from awe.cli.client import Api, ClientError
from awe.settings import LOGS, RUN, RUNS, STATUS, WORKERS, Settings


def run_client_command(command: str, settings: Settings, arguments: dict[str, Any]) -> int:
    try:
        return COMMANDS[command](Api.of(settings), arguments)
    except ClientError as exc:
        print(f"awe: {exc}", file=sys.stderr)
        return 1
    except BadArgument as exc:
        print(f"awe {command}: {exc}", file=sys.stderr)
        return 2


class BadArgument(Exception):
    """An argument the command cannot use (state that is not JSON, a file that cannot be read)."""


def _run(api: Api, arguments: dict[str, Any]) -> int:
    body = {"graph_id": arguments["graph_id"], "initial_state": _state(arguments["state"])}
    answer = api.request_json("POST", "/graph/run", json.dumps(body).encode())
    run_id = answer["run_id"]
    print(f"run {run_id} on {answer['graph_id']} v{answer.get('graph_version', '?')}: {answer['status']}")
    if not arguments["follow"]:
        return 0
    final = asyncio.run(_stream(api, run_id))
    return 0 if final == "run_completed" else 1


def _state(text: str) -> dict[str, Any]:
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as exc:
            raise BadArgument(f"cannot read {text[1:]}: {exc.strerror or exc}") from None
    try:
        state = json.loads(text)
    except ValueError as exc:
        raise BadArgument(f"--state is not JSON: {exc}") from None
    if not isinstance(state, dict):
        raise BadArgument("--state must be a JSON object")
    return state


def _status(api: Api, arguments: dict[str, Any]) -> int:
    run = api.request_json("GET", f"/graph/state/{urllib.parse.quote(arguments['run_id'], safe='')}")
    print(f"{run['run_id']}  {run['status']}  {run['graph_id']} v{run['graph_version']}  step {run['step_count']}")
    if run.get("current_node"):
        print(f"node: {run['current_node']}" + (f"  pending: {', '.join(run['pending'])}" if run["pending"] else ""))
    if run.get("pause"):
        print(f"paused: {json.dumps(run['pause'])}")
    if run.get("error"):
        print(f"error: {run['error'].get('type')}: {run['error'].get('message')}")
    print(json.dumps(run["state"], indent=2, ensure_ascii=False))
    return 0


def _runs(api: Api, arguments: dict[str, Any]) -> int:
    query = {k: v for k, v in (("status", arguments["status"]), ("graph_id", arguments["graph"])) if v}
    query["limit"] = str(arguments["limit"])
    runs = api.request_json("GET", f"/runs?{urllib.parse.urlencode(query)}")["runs"]
    for run in runs:
        print(f"{run['run_id']}  {run['status']:<9}  {run['graph_id']}  step {run['step_count']}  {run['created_at']}")
    if not runs:
        print("no runs")
    return 0


def _workers(api: Api, arguments: dict[str, Any]) -> int:
    workers = api.request_json("GET", "/workers")["workers"]
    for w in workers:
        print(
            f"{w['worker_id']}  pid {w['pid']} on {w['host']}  in flight {w['in_flight']}"
            f"  capacity {w['capacity']} (+{w.get('async_capacity', 0)} async)  done {w['jobs_done']}"
        )
    if not workers:
        print("no workers connected")
    return 0


def _logs(api: Api, arguments: dict[str, Any]) -> int:
    asyncio.run(_stream(api, arguments["run_id"]))
    return 0


async def _stream(api: Api, run_id: str) -> str | None:
    """Print the run's events until the server closes the stream; the last event's name."""
    url = api.url
    ws_url = url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
    path = f"/ws/logs/{urllib.parse.quote(run_id, safe='')}"
    last: str | None = None
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{ws_url}{path}", headers=api.headers()) as ws,
        ):
            async for message in ws:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    break
                event = json.loads(message.data)
                print(event_line(event), flush=True)
                last = event["event"]
    except aiohttp.WSServerHandshakeError as exc:
        raise ClientError(f"no event stream for run {run_id!r} ({exc.status})") from None
    except aiohttp.ClientError as exc:
        raise ClientError(f"cannot reach the engine at {url}: {exc}") from None
    return last


def event_line(event: dict[str, Any]) -> str:
    """``12:00:01.234  node_completed   refactor  w1  step=3 attempt=1 duration_ms=12.5 ...``: one event."""
    fields = dict(event.get("fields") or {})
    details = [f"{k}={_short(v)}" for k, v in fields.items()]
    where = "  ".join(x for x in (event.get("node"), event.get("worker")) if x)
    return f"{event['time'][11:23]}  {event['event']:<16} {where}  {' '.join(details)}".rstrip()


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


COMMANDS = {RUN: _run, STATUS: _status, RUNS: _runs, WORKERS: _workers, LOGS: _logs}
