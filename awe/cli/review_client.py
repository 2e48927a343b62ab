"""``awe review FILE_OR_DIR``: run the Code Review Agent on local Python code through a running engine.

It reads the file, or the ``.py`` files under the folder (skipping hidden
folders and ``__pycache__``), starts a ``code_review_agent`` run with
``"wait": true``, follows it until it ends, and prints the Markdown report and
the unified diff. It changes no file: apply the diff with ``git apply`` or
``patch -p1`` if you want it.

Exit codes: 0 when the score reached the threshold, 1 when it did not, 2 for
input it cannot send (not Python, too large, unreadable), 3 when the engine is
unreachable, refuses the run or the run fails.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from awe.cli.client import Api, ClientError
from awe.graphs.code_review.sources import MAX_FILE_BYTES, MAX_FILES, MAX_TOTAL_BYTES
from awe.settings import Settings

EXIT_REACHED, EXIT_BELOW, EXIT_BAD_INPUT, EXIT_ENGINE = 0, 1, 2, 3
WAIT_SECONDS = 120.0
"""How long each request waits for the run to end (the API allows up to 300 s); then the client asks again."""
SKIPPED_FOLDERS = frozenset({"__pycache__", "node_modules", "venv", "site-packages"})


class BadInput(Exception):
    """A file or folder ``awe review`` cannot send; the message names it and what to do."""


def run_review(settings: Settings, arguments: dict[str, Any]) -> int:
    try:
        files = read_sources(Path(arguments["path"]))
    except BadInput as exc:
        print(f"awe review: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    state: dict[str, Any] = {"files": files, "quality_threshold": arguments["threshold"]}
    if arguments["max_iterations"] is not None:
        state["max_iterations"] = arguments["max_iterations"]
    try:
        run = _review(Api.of(settings), state)
    except ClientError as exc:
        print(f"awe review: {exc}", file=sys.stderr)
        return EXIT_ENGINE
    if run["status"] != "completed":
        error = run.get("error") or {}
        print(f"awe review: run {run['run_id']} {run['status']}: {error.get('type')}: {error.get('message')}")
        return EXIT_ENGINE
    final = run["state"]
    print(final["report"])
    if final.get("diff"):
        print(final["diff"], end="")
    return EXIT_REACHED if final["stop_reason"] == "threshold_reached" else EXIT_BELOW


def read_sources(path: Path) -> dict[str, str]:
    """``{relative path: source}`` for a ``.py`` file or every ``.py`` file under a folder."""
    if path.is_file():
        if path.suffix != ".py":
            raise BadInput(f"{path} is not a Python file: give a .py file or a folder of them")
        return {path.name: _read(path)}
    if not path.is_dir():
        raise BadInput(f"{path} does not exist: give a .py file or a folder of them")
    found = sorted(
        p for p in path.rglob("*.py") if not any(_skipped(part) for part in p.relative_to(path).parent.parts)
    )
    if not found:
        raise BadInput(f"{path} holds no .py file")
    if len(found) > MAX_FILES:
        raise BadInput(f"{path} holds {len(found)} .py files; review at most {MAX_FILES} at once (a sub-folder)")
    files = {p.relative_to(path).as_posix(): _read(p) for p in found}
    total = sum(len(s.encode()) for s in files.values())
    if total > MAX_TOTAL_BYTES:
        raise BadInput(f"{path} holds {total:,} bytes of Python; one review takes at most {MAX_TOTAL_BYTES:,}")
    return files


def _skipped(folder: str) -> bool:
    return folder.startswith(".") or folder in SKIPPED_FOLDERS


def _read(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise BadInput(f"{path} is {size:,} bytes; a file may have at most {MAX_FILE_BYTES:,}")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path} is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from None


def _review(api: Api, state: dict[str, Any]) -> dict[str, Any]:
    """Start the run and wait for its end: the whole run as the API gives it."""
    body = {"graph_id": "code_review_agent", "initial_state": state, "wait": True, "timeout": WAIT_SECONDS}
    run: dict[str, Any] = api.request_json("POST", "/graph/run", json.dumps(body).encode(), timeout=WAIT_SECONDS + 30)
    while run["status"] not in ("completed", "failed", "cancelled", "paused"):
        time.sleep(1.0)
        run = api.request_json("GET", f"/graph/state/{run['run_id']}")
    return run
