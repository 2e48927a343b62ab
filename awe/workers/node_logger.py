"""The logger a node gets as ``ctx.log``: one call, two destinations.

A line goes to the worker's own JSON log file (through structlog, bound to the
run and node) and to the run's event stream, where it appears as a
``node_log`` event. Fields are reduced to JSON data first, so a node can log
any object without breaking the message that carries it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

Forward = Callable[[str, str, dict[str, Any]], None]


def _plain(fields: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(json.dumps(fields, default=repr))
    return result


class NodeLogger:
    def __init__(self, logger: Any, forward: Forward) -> None:
        self._logger = logger
        self._forward = forward

    def _log(self, level: str, event: str, fields: dict[str, Any]) -> None:
        getattr(self._logger, level)(event, **fields)
        self._forward(level, str(event), _plain(fields))

    def debug(self, event: str, **fields: Any) -> None:
        self._log("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log("error", event, fields)

    def bind(self, **fields: Any) -> NodeLogger:
        """A logger that adds ``fields`` to every line, as structlog's ``bind`` does."""
        parent = self

        class _Bound(NodeLogger):
            def _log(self, level: str, event: str, more: dict[str, Any]) -> None:
                parent._log(level, event, {**fields, **more})

        return _Bound(self._logger, self._forward)
