"""The ``awe`` command: ``awe up``, ``awe coordinator``, ``awe worker``.

Every option can also be set by an ``AWE_<NAME>`` environment variable (a
command-line flag wins). ``--graphs`` is repeatable; its variable
``AWE_GRAPHS`` takes a comma-separated list.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any


def _env(name: str, default: Any, cast: type = str) -> Any:
    raw = os.environ.get(f"AWE_{name}")
    if raw is None or raw == "":
        return default
    try:
        return cast(raw)
    except ValueError:
        raise SystemExit(f"awe: AWE_{name}={raw!r} is not a valid {cast.__name__}") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a TCP port")
    return value


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--log-dir", default=_env("LOG_DIR", "logs"), help="folder for the JSON log files [AWE_LOG_DIR] (default: logs)"
    )
    p.add_argument(
        "--log-level",
        default=_env("LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help="[AWE_LOG_LEVEL] (default: info)",
    )
    env_graphs = [m for m in _env("GRAPHS", "").split(",") if m.strip()]
    p.add_argument(
        "--graphs",
        action="append",
        default=None,
        metavar="MODULE",
        help="a module whose Graph objects to serve; repeatable [AWE_GRAPHS, comma-separated]",
    )
    p.set_defaults(env_graphs=env_graphs)
    p.add_argument(
        "--heartbeat-interval",
        type=float,
        default=_env("HEARTBEAT_INTERVAL", 1.0, float),
        help="seconds between heartbeats [AWE_HEARTBEAT_INTERVAL] (default: 1.0)",
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=_env("DRAIN_TIMEOUT", 10.0, float),
        help="on SIGTERM, seconds to wait for the jobs in flight [AWE_DRAIN_TIMEOUT] (default: 10)",
    )


def _add_coordinator_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=_env("HOST", "127.0.0.1"), help="HTTP host [AWE_HOST] (default: 127.0.0.1)")
    p.add_argument("--port", type=_port, default=_env("PORT", 8000, int), help="HTTP port [AWE_PORT] (default: 8000)")
    p.add_argument(
        "--bind",
        default=_env("BIND", "tcp://127.0.0.1:5555"),
        help="ZeroMQ address workers connect to [AWE_BIND] (default: tcp://127.0.0.1:5555)",
    )
    p.add_argument("--db", default=_env("DB", "awe.db"), help="SQLite file [AWE_DB] (default: ./awe.db)")
    p.add_argument(
        "--heartbeat-liveness",
        type=_positive_int,
        default=_env("HEARTBEAT_LIVENESS", 3, int),
        help="missed heartbeats before a worker is declared lost [AWE_HEARTBEAT_LIVENESS] (default: 3)",
    )


def _add_worker_options(p: argparse.ArgumentParser, *, with_connect: bool) -> None:
    if with_connect:
        p.add_argument(
            "--connect",
            default=_env("CONNECT", "tcp://127.0.0.1:5555"),
            help="the coordinator's ZeroMQ address [AWE_CONNECT] (default: tcp://127.0.0.1:5555)",
        )
        p.add_argument("--worker-id", default=_env("WORKER_ID", None), help="[AWE_WORKER_ID] (default: <host>-<pid>)")
    p.add_argument(
        "--capacity",
        type=_positive_int,
        default=_env("CAPACITY", 4, int),
        help="jobs a worker runs at once [AWE_CAPACITY] (default: 4)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="awe", description="awe, the Agent Workflow Engine")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="start the coordinator (HTTP API) and a pool of workers")
    _add_common(up)
    _add_coordinator_options(up)
    _add_worker_options(up, with_connect=False)
    up.add_argument(
        "--workers",
        type=_positive_int,
        default=_env("WORKERS", 2, int),
        help="worker processes to run [AWE_WORKERS] (default: 2)",
    )

    coordinator = commands.add_parser("coordinator", help="start the coordinator and its HTTP API")
    _add_common(coordinator)
    _add_coordinator_options(coordinator)

    worker = commands.add_parser("worker", help="start one worker process")
    _add_common(worker)
    _add_worker_options(worker, with_connect=True)
    return parser


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    args.graphs = [*args.env_graphs, *(args.graphs or [])]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.command == "coordinator":
        from awe.coordinator.main import run_coordinator

        return run_coordinator(args)
    if args.command == "worker":
        from awe.workers.main import run_worker

        return run_worker(args)
    from awe.up import run_up

    return run_up(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
