"""Structured logs: one JSON object per line, one file per process, rotated by size.

Each process calls :func:`configure` once at start with its role and its own file name
(``coordinator.jsonl``, ``worker-<id>.jsonl``). Every line has ``timestamp`` (ISO-8601 UTC),
``level``, ``event``, ``role`` (``coordinator`` or ``worker``), ``process`` and ``pid``, and,
bound where they apply, ``run_id``, ``node`` and ``worker``. Each line is one ``write``
to the file as it is logged, so a file is complete up to the moment a process is killed.
Standard-library loggers (aiohttp, asyncio) are routed into the same file in the same format.

Past ``max_bytes`` a file is renamed ``<name>.jsonl.1`` (``.1`` becomes ``.2``, and so on,
the oldest beyond ``backups`` deleted) and a new one started between two lines, so at
most ``backups + 1`` files of whole JSON lines are kept per process. A process rotates
only its own file: it holds an exclusive ``flock`` on the file it writes, and a second
process given the same name (two workers started with one ``--worker-id``) writes
``<name>-<pid>.jsonl`` instead of renaming the first one's file under it.

With ``console=True`` each event is also printed to stderr in structlog's readable form
(in colour only on a terminal): ``awe up`` asks this of its processes, so its console shows
what their files record.

One level (``--log-level``, ``AWE_LOG_LEVEL``) applies to both: ``debug``
shows structlog's and the libraries' debug lines, ``warning`` keeps only
warnings and errors from either. The one exception is ``aiohttp.access`` (a
line per HTTP request, health probes included), kept at ``warning`` or above
whatever the level: what a request does (``run_queued``, ``run_cancelled``)
the coordinator logs itself.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
import threading
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any, BinaryIO

import structlog

from awe import jsondata
from awe.settings import Settings

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}

CONSOLE_HIDES = ("pid", "role")
"""Keys the console leaves out, as noise to a person reading along (the file keeps them): ``process``
(``coordinator``, ``worker-<id>``) says the role already."""


class RotatingFile:
    """The file a process logs to: written a line at a time, and rotated between lines past ``max_bytes``.

    structlog's logger and the standard-library handler both write here, from any thread; the
    lock makes each line's size check, rotation and write one step.
    """

    def __init__(self, path: Path, *, max_bytes: int, backups: int) -> None:
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        self.path, self._file = _open_own(path)
        self._size = self._file.seek(0, os.SEEK_END)

    def write(self, text: str) -> int:
        data = text.encode("utf-8")
        with self._lock:
            if self._size > 0 and self._size + len(data) > self.max_bytes:
                self._rotate()
            self._file.write(data)
            self._size += len(data)
        return len(text)

    def flush(self) -> None:
        """Nothing to do: the file is unbuffered, each line is written whole as it comes."""

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def _rotate(self) -> None:
        self._file.close()  # and with it, the lock
        for number in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{number}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{number + 1}"))
        if self.backups > 0:
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - kept open until the next rotation
        _try_lock(self._file)
        self._size = 0


def _try_lock(file: BinaryIO) -> bool:
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _open_own(path: Path) -> tuple[Path, BinaryIO]:
    """``path`` opened for appending and locked; or ``<stem>-<pid>.jsonl`` if a live process holds ``path``."""
    file = open(path, "ab", buffering=0)  # noqa: SIM115 - lives as long as the process
    if _try_lock(file):
        return path, file
    file.close()
    own = path.with_name(f"{path.stem}-{os.getpid()}{path.suffix}")
    file = open(own, "ab", buffering=0)  # noqa: SIM115
    _try_lock(file)
    return own, file


def configure(
    process: str,
    log_dir: str | os.PathLike[str],
    *,
    role: str,
    level: str = "info",
    max_bytes: int = Settings.log_max_bytes,
    backups: int = Settings.log_backups,
    console: bool = False,
    context: Mapping[str, Any] | None = None,
) -> Path:
    """Send this process's logs to ``<log_dir>/<process>.jsonl`` (see the module's docstring); returns the path.

    ``role`` and ``context`` (such as a worker's ``worker`` id) go into every line. An
    unknown ``level`` is an error rather than a silent ``info``: a level that does not apply
    is worse than a process that refuses to start.
    """
    numeric_level = _LEVELS.get(level.lower())
    if numeric_level is None:
        raise ValueError(f"unknown log level {level!r}; expected one of {', '.join(_LEVELS)}")
    folder = Path(log_dir)
    folder.mkdir(parents=True, exist_ok=True)
    stream = RotatingFile(folder / f"{process}.jsonl", max_bytes=max_bytes, backups=backups)
    identity = {"role": role, "process": process, "pid": os.getpid(), **(context or {})}

    def add_identity(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
        for key, value in identity.items():
            event.setdefault(key, value)
        return event

    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_identity,
    ]
    to_console: list[Any] = [_ConsoleEcho(_console_renderer())] if console else []
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            *to_console,
            structlog.processors.JSONRenderer(serializer=_json_line),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.WriteLoggerFactory(file=stream),  # type: ignore[arg-type]  # it writes and flushes; nothing more
        cache_logger_on_first_use=True,
    )

    foreign_chain = [*shared, structlog.stdlib.add_logger_name, structlog.processors.format_exc_info]
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=structlog.processors.JSONRenderer(serializer=_json_line), foreign_pre_chain=foreign_chain
        )
    )
    handlers: list[logging.Handler] = [handler]
    if console:
        echo = logging.StreamHandler(sys.stderr)
        echo.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    _hide_for_console,
                    _console_renderer(),
                ],
                foreign_pre_chain=foreign_chain,
            )
        )
        handlers.append(echo)
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(numeric_level)
    logging.getLogger("aiohttp.access").setLevel(max(numeric_level, logging.WARNING))
    return stream.path


def _console_renderer() -> structlog.dev.ConsoleRenderer:
    return structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty(), pad_event_to=24)


def _hide_for_console(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in CONSOLE_HIDES:
        event.pop(key, None)
    return event


class _ConsoleEcho:
    """A processor that prints a readable copy of each event to stderr and passes the event on unchanged."""

    def __init__(self, renderer: structlog.dev.ConsoleRenderer) -> None:
        self.renderer = renderer
        self._lock = threading.Lock()

    def __call__(self, logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        shown = {k: v for k, v in event.items() if k not in CONSOLE_HIDES}
        line = self.renderer(logger, method, shown)
        with self._lock:
            sys.stderr.write(f"{line}\n")
            sys.stderr.flush()
        return event


def _json_line(event: dict[str, Any], **_: Any) -> str:
    """A log line's JSON, by orjson (a worker writes two lines per job); anything else by its repr."""
    return jsondata.to_json(event, default=repr)
