"""Every setting of every awe process, with its default, in one place.

:class:`Settings` is a frozen dataclass; each field is one setting, and its
metadata says what it means, which commands take it and how text becomes its
value. The command line (:mod:`awe.cli.parser`) builds its flags and reads the
``AWE_<NAME>`` environment variables from these fields, so a new setting is a
new field here and nothing else. Components receive the values they use; none
of them parses anything.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

UP, COORDINATOR, WORKER, GRAPH = "up", "coordinator", "worker", "graph"
RUN, STATUS, RUNS, WORKERS, LOGS, REVIEW = "run", "status", "runs", "workers", "logs", "review"
KEYS, BACKUP = "keys", "backup"
EVERY_PROCESS = frozenset({UP, COORDINATOR, WORKER})
CLIENTS = frozenset({GRAPH, RUN, STATUS, RUNS, WORKERS, LOGS, REVIEW})
"""Commands that talk to a running engine over its API."""
LOG_LEVELS = ("debug", "info", "warning", "error")


# -- how text becomes a value: each raises ValueError with a message for a person ----------


def whole_number(text: str, *, low: int = 1, high: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None
    if value < low or (high is not None and value > high):
        upper = f" and at most {high}" if high is not None else ""
        raise ValueError(f"expected a whole number of at least {low}{upper}, got {text}")
    return value


def positive_int(text: str) -> int:
    return whole_number(text, low=1)


def non_negative_int(text: str) -> int:
    return whole_number(text, low=0)


def port(text: str) -> int:
    try:
        return whole_number(text, low=0, high=65535)
    except ValueError:
        raise ValueError(f"{text!r} is not a TCP port (0-65535)") from None


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise ValueError(f"expected a positive number of seconds, got {text}")
    return value


def byte_count(text: str) -> int:
    """A number of bytes, at least 1000 (a file must hold a few lines): ``10000000``, or ``10MB``, ``512kB``."""
    units = {"kb": 1000, "mb": 1000**2, "gb": 1000**3}
    lowered = text.strip().lower()
    factor = next((units[u] for u in units if lowered.endswith(u)), 1)
    digits = lowered[:-2] if factor > 1 else lowered
    try:
        value = int(digits) * factor
    except ValueError:
        raise ValueError(f"expected a number of bytes (like 10000000 or 10MB), got {text!r}") from None
    if value < 1000:
        raise ValueError(f"expected at least 1000 bytes, got {text}")
    return value


def switch(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected on or off (true/false, yes/no, 1/0), got {text!r}")


def log_level(text: str) -> str:
    if text.lower() not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {text!r}")
    return text.lower()


DURABILITY = ("normal", "full")


def durability(text: str) -> str:
    if text.lower() not in DURABILITY:
        raise ValueError(
            f"expected normal (survives a crash of any process) or full (survives power loss too), got {text!r}"
        )
    return text.lower()


def module_list(text: str) -> tuple[str, ...]:
    """``AWE_GRAPHS`` is comma-separated; each ``--graphs`` flag names one module."""
    return tuple(m.strip() for m in text.split(",") if m.strip())


def host_list(text: str) -> tuple[str, ...]:
    """``AWE_ALLOWED_HOSTS`` / ``AWE_CORS_ORIGINS`` are comma-separated; each flag names one."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _setting(
    default: Any,
    help: str,
    *,
    commands: frozenset[str],
    parse: Callable[[str], Any] = str,
    secret: bool = False,
    metavar: str | None = None,
) -> Any:
    """``secret``: never passed to a child process on its command line (``ps`` shows command lines).
    ``metavar``: what one item of a list setting is, for ``--help``."""
    metadata = {"help": help, "commands": commands, "parse": parse, "secret": secret, "metavar": metavar}
    return field(default=default, metadata=metadata, repr=not secret)


SERVERS = frozenset({UP, COORDINATOR})
API_USERS = SERVERS | CLIENTS
"""Commands that need the API token: the servers check it, the clients send it."""


@dataclass(frozen=True)
class Settings:
    # -- every process ----------------------------------------------------------------
    log_dir: str = _setting("logs", "folder for the JSON log files", commands=EVERY_PROCESS)
    log_level: str = _setting(
        "info", "least severe level logged: debug, info, warning or error", commands=EVERY_PROCESS, parse=log_level
    )
    log_max_bytes: int = _setting(
        10_000_000,
        "a log file past this size (bytes, or with kB, MB, GB) is rotated: renamed <name>.jsonl.1 and a new one begun",
        commands=EVERY_PROCESS,
        parse=byte_count,
    )
    log_backups: int = _setting(
        5,
        "rotated log files kept per process (<name>.jsonl.1 to .N); older ones are deleted",
        commands=EVERY_PROCESS,
        parse=non_negative_int,
    )
    log_console: bool = _setting(
        False,
        "also print each log event to stderr, readably (awe up turns this on for its processes)",
        commands=frozenset({COORDINATOR, WORKER}),
        parse=switch,
    )
    graphs: tuple[str, ...] = _setting(
        (),
        "a module whose Graph objects to serve; repeatable (comma-separated in the variable)",
        commands=EVERY_PROCESS,
        parse=module_list,
        metavar="MODULE",
    )
    heartbeat_interval: float = _setting(
        1.0, "seconds between heartbeats", commands=EVERY_PROCESS, parse=positive_float
    )
    drain_timeout: float = _setting(
        10.0, "on SIGTERM, seconds to wait for the jobs in flight", commands=EVERY_PROCESS, parse=positive_float
    )
    # -- the coordinator ----------------------------------------------------------------
    host: str = _setting("127.0.0.1", "HTTP host", commands=frozenset({UP, COORDINATOR}))
    port: int = _setting(8000, "HTTP port", commands=frozenset({UP, COORDINATOR}), parse=port)
    bind: str = _setting(
        "tcp://127.0.0.1:5555", "ZeroMQ address workers connect to", commands=frozenset({UP, COORDINATOR})
    )
    db: str = _setting("awe.db", "SQLite file", commands=frozenset({UP, COORDINATOR, BACKUP}))
    durability: str = _setting(
        "normal",
        "normal: a committed step survives any process crash (SQLite synchronous=NORMAL); "
        "full: it survives power loss too, at the cost of an fsync per commit batch (synchronous=FULL)",
        commands=frozenset({UP, COORDINATOR}),
        parse=durability,
    )
    heartbeat_liveness: int = _setting(
        3,
        "missed heartbeats before a worker is declared lost",
        commands=frozenset({UP, COORDINATOR}),
        parse=positive_int,
    )
    # -- the API's defences (see SECURITY.md) ---------------------------------------------------
    token: str | None = _setting(
        None,
        "the API token: every endpoint but /healthz then requires 'Authorization: Bearer <token>' "
        "(prefer AWE_TOKEN or --token-file: a command line shows in ps)",
        commands=API_USERS,
        secret=True,
    )
    token_file: str | None = _setting(
        None, "a file whose first line is the API token (instead of --token)", commands=API_USERS
    )
    allow_no_token: bool = _setting(
        False,
        "serve the API on a non-loopback host without a token (anyone who reaches the port can start runs)",
        commands=SERVERS,
        parse=switch,
    )
    allowed_hosts: tuple[str, ...] = _setting(
        (),
        "a Host header the API answers besides localhost, 127.0.0.1, [::1] and the bound host (DNS rebinding); "
        "repeatable (comma-separated in the variable); '*' allows any",
        commands=SERVERS,
        parse=host_list,
        metavar="HOST",
    )
    cors_origins: tuple[str, ...] = _setting(
        (),
        "a web origin (https://app.example.com) whose pages may call the API; repeatable (comma-separated in the "
        "variable); none by default",
        commands=SERVERS,
        parse=host_list,
        metavar="ORIGIN",
    )
    max_body_bytes: int = _setting(
        16_000_000,
        "largest request body the API reads (bytes, or with kB, MB, GB); larger is a 413",
        commands=SERVERS,
        parse=byte_count,
    )
    max_state_bytes: int = _setting(
        8_000_000,
        "largest run state, as JSON (bytes, or with kB, MB, GB): a larger initial_state or update is a 413, "
        "and a step that grows the state past it fails the run with StateTooLarge",
        commands=SERVERS,
        parse=byte_count,
    )
    max_runs_in_flight: int = _setting(
        20_000,
        "unfinished runs (queued, running or paused) at once; past it, starting one is a 429 with Retry-After",
        commands=SERVERS,
        parse=positive_int,
    )
    max_runs_in_flight_per_graph: int = _setting(
        10_000, "unfinished runs of one graph at once (a 429 past it)", commands=SERVERS, parse=positive_int
    )
    max_websockets: int = _setting(
        1000, "open /ws/logs streams at once (a 429 past it)", commands=SERVERS, parse=positive_int
    )
    max_websockets_per_run: int = _setting(
        50, "open /ws/logs streams of one run at once (a 429 past it)", commands=SERVERS, parse=positive_int
    )
    max_events_per_run: int = _setting(
        100_000,
        "events kept per run: past it, nodes' log lines are dropped (a last warning line says so); "
        "the engine's own events are always kept (max_steps bounds them)",
        commands=SERVERS,
        parse=positive_int,
    )
    # -- the ZeroMQ link between the coordinator and its workers ---------------------------------
    curve_keys: str | None = _setting(
        None,
        "folder of CURVE keys made by awe keys: the coordinator and awe up take the folder itself (DIR), a worker "
        "its own folder in it (DIR/worker-1); only workers with an allowed key connect, and all traffic is encrypted",
        commands=EVERY_PROCESS,
    )
    allow_insecure_workers: bool = _setting(
        False,
        "bind the worker socket on a non-loopback address without --curve-keys: anyone who reaches the port can "
        "join as a worker, read every job and forge results",
        commands=frozenset({UP, COORDINATOR}),
        parse=switch,
    )
    max_frame_bytes: int = _setting(
        32_000_000,
        "largest ZeroMQ message a process accepts or sends (bytes, or with kB, MB, GB); a peer that sends a larger "
        "one is disconnected; give the coordinator and its workers the same value",
        commands=EVERY_PROCESS,
        parse=byte_count,
    )
    # -- workers ---------------------------------------------------------------------------
    connect: str = _setting("tcp://127.0.0.1:5555", "the coordinator's ZeroMQ address", commands=frozenset({WORKER}))
    worker_id: str | None = _setting(None, "this worker's name (default: <host>-<pid>)", commands=frozenset({WORKER}))
    capacity: int = _setting(
        4, "sync nodes a worker runs at once (each in a thread)", commands=frozenset({UP, WORKER}), parse=positive_int
    )
    async_capacity: int = _setting(
        1000,
        "async nodes a worker runs at once (each a coroutine: waiting costs no thread)",
        commands=frozenset({UP, WORKER}),
        parse=positive_int,
    )
    state_cache_mb: int = _setting(
        256,
        "MB of runs' last states a worker keeps, so jobs carry only what changed (0: keep none)",
        commands=frozenset({UP, WORKER}),
        parse=lambda text: whole_number(text, low=0),
    )
    # -- clients of the API -------------------------------------------------------------------
    url: str = _setting("http://127.0.0.1:8000", "the engine's API", commands=CLIENTS)
    # -- awe up ------------------------------------------------------------------------------
    workers: int = _setting(2, "worker processes to run", commands=frozenset({UP}), parse=positive_int)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def api_token(settings: Settings) -> str | None:
    """The API token: ``token``, or the first line of ``token_file``; ValueError saying what is wrong."""
    if settings.token is not None and settings.token_file is not None:
        raise ValueError("give the API token once: --token (AWE_TOKEN) or --token-file (AWE_TOKEN_FILE), not both")
    token = settings.token
    if settings.token_file is not None:
        try:
            with open(settings.token_file, encoding="utf-8") as file:
                token = file.readline().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read the token file {settings.token_file}: {exc}") from None
    if token is None:
        return None
    if len(token) < MIN_TOKEN_LENGTH or not token.isprintable() or " " in token:
        where = settings.token_file or "--token/AWE_TOKEN"
        raise ValueError(
            f"the API token from {where} must be at least {MIN_TOKEN_LENGTH} printable characters without spaces "
            "(make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return token


MIN_TOKEN_LENGTH = 16


def fields_for(command: str) -> list[dataclasses.Field[Any]]:
    """The settings a command takes, in declaration order."""
    return [f for f in dataclasses.fields(Settings) if command in f.metadata["commands"]]
