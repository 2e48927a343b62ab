"""Structured logs: one JSON object per line, one file per process.

Each process calls :func:`configure` once at start with its own file name
(``coordinator.jsonl``, ``worker-<id>.jsonl``). structlog writes and flushes
each line as it is logged, so a file is complete up to the moment a process is
killed. Standard-library loggers (aiohttp, asyncio) are routed into the same
file in the same format.

One level (``--log-level``, ``AWE_LOG_LEVEL``) applies to both: ``debug``
shows structlog's and the libraries' debug lines, ``warning`` keeps only
warnings and errors from either. The one exception is ``aiohttp.access`` (a
line per HTTP request, health probes included), kept at ``warning`` or above
whatever the level: what a request does (``run_queued``, ``run_cancelled``)
the coordinator logs itself.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, TextIO

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def configure(process: str, log_dir: str | os.PathLike[str], *, level: str = "info") -> Path:
    """Send this process's logs to ``<log_dir>/<process>.jsonl``; returns that path.

    An unknown ``level`` is an error rather than a silent ``info``: a level that does not apply
    is worse than a process that refuses to start.
    """
    numeric_level = _LEVELS.get(level.lower())
    if numeric_level is None:
        raise ValueError(f"unknown log level {level!r}; expected one of {', '.join(_LEVELS)}")
    folder = Path(log_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{process}.jsonl"
    stream: TextIO = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - lives as long as the process

    def add_process(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
        event.setdefault("process", process)
        event.setdefault("pid", os.getpid())
        return event

    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_process,
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(default=repr),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )

    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=structlog.processors.JSONRenderer(default=repr),
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, structlog.processors.format_exc_info],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric_level)
    logging.getLogger("aiohttp.access").setLevel(max(numeric_level, logging.WARNING))
    return path
