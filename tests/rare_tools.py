"""A tool only some workers have (loaded with ``--graphs rare_tools`` by the coordinator and one worker)."""

from __future__ import annotations

from typing import Any

from awe import Context, tool


@tool("rare.sign")
def sign(state: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Writes the id of the worker that ran it, so a test can see where the node went."""
    return {"signed_by": ctx.worker_id}
