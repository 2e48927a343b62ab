"""Commands that talk to a running engine over its API: ``awe graph push`` and ``awe graph list``.

They use the standard library's HTTP client (nothing to start, no event loop),
print what the engine answered in a form a person reads, and exit non-zero
with the engine's error, or a readable reason, when something is wrong.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from awe.settings import Settings

TIMEOUT_SECONDS = 30.0


class ClientError(Exception):
    """Something a person must fix: a file, the URL, or what the engine refused."""


def run_graph_command(settings: Settings, arguments: dict[str, Any]) -> int:
    try:
        if arguments["action"] == "push":
            _push(settings.url, Path(arguments["file"]))
        else:
            _list(settings.url)
    except ClientError as exc:
        print(f"awe: {exc}", file=sys.stderr)
        return 1
    return 0


def _push(url: str, path: Path) -> None:
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise ClientError(f"cannot read {path}: {exc.strerror or exc}") from None
    answer = request_json("POST", f"{url}/graph/create", body)
    print(f"created graph {answer['graph_id']!r} version {answer['version']}")


def _list(url: str) -> None:
    graphs = request_json("GET", f"{url}/graphs")["graphs"]
    if not graphs:
        print("no graphs")
    for graph in graphs:
        print(f"{graph['graph_id']}  v{graph['version']}  {graph['source']}  {len(graph['nodes'])} nodes")


def request_json(method: str, url: str, body: bytes | None = None, *, timeout: float = TIMEOUT_SECONDS) -> Any:
    request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise ClientError(engine_error(exc)) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ClientError(f"cannot reach the engine at {url}: {reason}") from None


def engine_error(exc: urllib.error.HTTPError) -> str:
    """The engine's ``{"error", "problems"?}`` as lines, one problem a line."""
    try:
        answer = json.loads(exc.read())
    except ValueError:
        return f"the engine answered {exc.code} {exc.reason}"
    lines = [f"{answer.get('error', exc.reason)} ({exc.code})"]
    lines += [f"  {p.get('path') or '/'}: {p.get('message')}" for p in answer.get("problems", [])]
    return "\n".join(lines)
