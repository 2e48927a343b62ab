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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from awe.settings import Settings, api_token

TIMEOUT_SECONDS = 30.0


class ClientError(Exception):
    """Something a person must fix: a file, the URL, or what the engine refused."""


@dataclass(frozen=True)
class Api:
    """Where the engine's API is, and the token it wants (None: it has none)."""

    url: str
    token: str | None = None

    @classmethod
    def of(cls, settings: Settings) -> Api:
        try:
            return cls(settings.url.rstrip("/"), api_token(settings))
        except ValueError as exc:
            raise ClientError(str(exc)) from None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token is not None else {}

    def request_json(self, method: str, path: str, body: bytes | None = None, *, timeout: float = 30.0) -> Any:
        """:func:`request_json` on ``path`` of this API, with the token."""
        return request_json(method, f"{self.url}{path}", body, timeout=timeout, headers=self.headers())


def run_graph_command(settings: Settings, arguments: dict[str, Any]) -> int:
    try:
        api = Api.of(settings)
        if arguments["action"] == "push":
            _push(api, Path(arguments["file"]))
        else:
            _list(api)
    except ClientError as exc:
        print(f"awe: {exc}", file=sys.stderr)
        return 1
    return 0


def _push(api: Api, path: Path) -> None:
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise ClientError(f"cannot read {path}: {exc.strerror or exc}") from None
    answer = api.request_json("POST", "/graph/create", body)
    print(f"created graph {answer['graph_id']!r} version {answer['version']}")


def _list(api: Api) -> None:
    graphs = api.request_json("GET", "/graphs")["graphs"]
    if not graphs:
        print("no graphs")
    for graph in graphs:
        print(f"{graph['graph_id']}  v{graph['version']}  {graph['source']}  {len(graph['nodes'])} nodes")


def request_json(
    method: str,
    url: str,
    body: bytes | None = None,
    *,
    timeout: float = TIMEOUT_SECONDS,
    headers: dict[str, str] | None = None,
) -> Any:
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    request = urllib.request.Request(url, data=body, method=method, headers=all_headers)
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
    if exc.code == 401:
        lines.append("  give the engine's token with --token-file FILE, AWE_TOKEN or --token")
    lines += [f"  {p.get('path') or '/'}: {p.get('message')}" for p in answer.get("problems", [])]
    return "\n".join(lines)
