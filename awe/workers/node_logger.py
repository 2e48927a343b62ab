"""The logger a node gets as ``ctx.log``: one call, two destinations.

A line goes to the worker's own JSON log file (through structlog, bound to the
job: run, graph, node, branch, step, attempt) and to the run's event stream,
where it appears as a ``node_log`` event. Fields are reduced to JSON data
first, so a node can log any object without breaking the message that carries it.

In the log file a node's fields sit next to the job's own, so a field that
would overwrite one of them (``ctx.log.info("fetched", node=url)``) or one the
line itself needs (``event``, ``level``, ``timestamp``) is written as
``field_<name>``: every line still names the run and node it came from, and a
node cannot break its own run by picking a field name. The event stream keeps
the node's fields as they were, under ``fields``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from awe import jsondata

Forward = Callable[[str, str, dict[str, Any]], None]

LINE_KEYS = frozenset({"event", "level", "timestamp", "process", "pid"})
"""Keys every line of the log file has (see ``awe.logs``), which a node's field must not replace."""

RENAMED_PREFIX = "field_"


def _plain(fields: dict[str, Any]) -> dict[str, Any]:
    """JSON data the event stream can carry: odd values become readable text, never an error."""
    result: dict[str, Any] = jsondata.sanitize(fields)
    return result


class NodeLogger:
    def __init__(self, logger: Any, forward: Forward, *, context: dict[str, Any] | None = None) -> None:
        """``context``: the job's fields, bound to every line of the log file and never overwritten."""
        context = context or {}
        self._logger = logger.bind(**context) if context else logger
        self._forward = forward
        self._reserved = LINE_KEYS | context.keys()

    def _log(self, level: str, event: str, fields: dict[str, Any]) -> None:
        getattr(self._logger, level)(event, **self._safe(fields))
        self._forward(level, str(event), _plain(fields))

    def _safe(self, fields: dict[str, Any]) -> dict[str, Any]:
        """``fields`` with each name the line already uses moved to ``field_<name>``."""
        if self._reserved.isdisjoint(fields):
            return fields
        return {(RENAMED_PREFIX + k if k in self._reserved else k): v for k, v in fields.items()}

    def debug(self, event: str, /, **fields: Any) -> None:
        self._log("debug", event, fields)

    def info(self, event: str, /, **fields: Any) -> None:
        self._log("info", event, fields)

    def warning(self, event: str, /, **fields: Any) -> None:
        self._log("warning", event, fields)

    def error(self, event: str, /, **fields: Any) -> None:
        self._log("error", event, fields)

    def bind(self, **fields: Any) -> NodeLogger:
        """A logger that adds ``fields`` to every line, as structlog's ``bind`` does."""
        parent = self

        class _Bound(NodeLogger):
            def _log(self, level: str, event: str, more: dict[str, Any]) -> None:
                parent._log(level, event, {**fields, **more})

        return _Bound(self._logger, self._forward)
