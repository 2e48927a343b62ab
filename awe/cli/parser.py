"""The command line's grammar, generated from :class:`awe.settings.Settings`.

Each setting a command takes becomes a flag (``drain_timeout`` is
``--drain-timeout``) and an environment variable (``AWE_DRAIN_TIMEOUT``); a
flag wins over the variable, the variable over the default. A value that does
not parse stops the command with a message naming the flag or variable.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from awe.settings import (
    BACKUP,
    COORDINATOR,
    GRAPH,
    KEYS,
    LOGS,
    REVIEW,
    RUN,
    RUNS,
    STATUS,
    UP,
    WORKER,
    WORKERS,
    Settings,
    fields_for,
    positive_int,
)

COMMANDS = {
    UP: "start the coordinator (HTTP API) and a pool of workers",
    COORDINATOR: "start the coordinator and its HTTP API",
    WORKER: "start one worker process",
    GRAPH: "create and list graphs on a running engine (awe graph push FILE.json | awe graph list)",
    RUN: "start a run on a running engine; --follow streams its events until it ends",
    STATUS: "show a run: its status, where it is, its error or question, its state",
    RUNS: "list recent runs",
    WORKERS: "list the connected workers",
    LOGS: "print a run's events, following it until it ends",
    REVIEW: "review a .py file or a folder of them with the Code Review Agent; print the report and the diff",
    KEYS: "make the CURVE keys that let workers on other machines join the coordinator, encrypted (--curve-keys)",
    BACKUP: "copy the store (the database and its values file) to a new file, consistently, while the engine runs",
}


@dataclass(frozen=True)
class Invocation:
    command: str
    settings: Settings
    arguments: dict[str, Any] = field(default_factory=dict)
    """What the command takes besides settings (``awe graph push``'s action and file)."""


def env_name(setting: str) -> str:
    return f"AWE_{setting.upper()}"


def _argument_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _env_default(f: dataclasses.Field[Any]) -> Any:
    raw = os.environ.get(env_name(f.name))
    if raw is None or raw == "":
        return f.default
    try:
        return f.metadata["parse"](raw)
    except ValueError as exc:
        raise SystemExit(f"awe: {env_name(f.name)}={raw!r}: {exc}") from None


def _add_setting(parser: argparse.ArgumentParser, f: dataclasses.Field[Any]) -> None:
    flag = f"--{f.name.replace('_', '-')}"
    default = _env_default(f)
    shown = ",".join(default) if isinstance(default, tuple) else default
    if f.metadata["secret"] and default is not None:
        shown = "set, hidden"
    help_text = f"{f.metadata['help']} [{env_name(f.name)}] (default: {shown})"
    if isinstance(f.default, tuple):  # a list setting: each flag adds one item to the variable's
        parser.add_argument(flag, action="append", default=None, metavar=f.metadata["metavar"], help=help_text)
        parser.set_defaults(**{f"env_{f.name}": default})
    else:
        parser.add_argument(flag, type=_argument_type(f.metadata["parse"]), default=default, help=help_text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="awe", description="awe, the Agent Workflow Engine")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, summary in COMMANDS.items():
        sub = commands.add_parser(name, help=summary)
        if name == GRAPH:
            _add_graph_actions(sub)
            continue
        CLIENT_ARGUMENTS.get(name, _no_arguments)(sub)
        for f in fields_for(name):
            _add_setting(sub, f)
    return parser


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("graph_id", metavar="GRAPH", help="the graph to run")
    parser.add_argument("--state", default="{}", help="the initial state: JSON text, or @FILE to read it from a file")
    parser.add_argument("--follow", action="store_true", help="stream the run's events until it ends")


def _run_id_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", metavar="RUN", help="a run id, as POST /graph/run answered it")


def _runs_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--status", default=None, help="only runs with this status (queued, running, paused, ...)")
    parser.add_argument("--graph", default=None, help="only runs of this graph")
    parser.add_argument("--limit", type=int, default=20, help="how many, newest first (default: 20)")


def _review_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="FILE_OR_DIR", help="a .py file, or a folder whose .py files to review")
    parser.add_argument(
        "--threshold", type=_score, default=80, help="the score (0-100) to reach; exit 0 if reached (default: 80)"
    )
    parser.add_argument(
        "--max-iterations", type=_argument_type(positive_int), default=None, help="review passes at most (default: 3)"
    )


def _score(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a score from 0 to 100, got {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"expected a score from 0 to 100, got {text}")
    return value


def _keys_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help="the key folder to create (or to add a worker to)")
    parser.add_argument(
        "--workers",
        type=_argument_type(positive_int),
        default=2,
        help="worker key pairs to make in a new folder, named worker-1 to worker-N (default: 2)",
    )
    parser.add_argument(
        "--add-worker", metavar="NAME", default=None, help="add one worker key pair to an existing key folder"
    )


def _backup_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target", metavar="FILE", help="the copy of the database to make (its values file goes beside it)"
    )


CLIENT_ARGUMENTS = {
    BACKUP: _backup_arguments,
    KEYS: _keys_arguments,
    RUN: _run_arguments,
    STATUS: _run_id_argument,
    LOGS: _run_id_argument,
    RUNS: _runs_arguments,
    REVIEW: _review_arguments,
}


def _add_graph_actions(parser: argparse.ArgumentParser) -> None:
    """``awe graph ACTION ... [--url URL]``: each action takes the client settings after its arguments."""
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    push = actions.add_parser("push", help="create a graph (or a new version of it) from a JSON file")
    push.add_argument("file", metavar="FILE.json", help="a graph in awe's JSON graph language")
    listing = actions.add_parser("list", help="list the engine's graphs with their versions")
    for action in (push, listing):
        for f in fields_for(GRAPH):
            _add_setting(action, f)


def parse(argv: Sequence[str] | None = None) -> Invocation:
    """The command, its settings and its other arguments."""
    args = vars(build_parser().parse_args(argv))
    command = args.pop("command")
    values: dict[str, Any] = {}
    for f in fields_for(command):
        if isinstance(f.default, tuple):
            values[f.name] = (*args.pop(f"env_{f.name}"), *(args.pop(f.name) or ()))
        else:
            values[f.name] = args.pop(f.name)
    return Invocation(command, Settings(**values), args)


def to_flags(command: str, settings: Settings) -> list[str]:
    """The command line that gives a child process of ``command`` these settings, but for the secret ones
    (:func:`secret_environment` passes those)."""
    flags: list[str] = []
    for f in fields_for(command):
        if f.metadata["secret"]:
            continue  # a child reads it from its environment (see secret_environment)
        value = getattr(settings, f.name)
        flag = f"--{f.name.replace('_', '-')}"
        if isinstance(value, tuple):
            for item in value:
                flags += [flag, item]
        elif value is not None:
            flags += [flag, str(value)]
    return flags


def secret_environment(command: str, settings: Settings) -> dict[str, str]:
    """The ``AWE_*`` variables that give a child process of ``command`` the secret settings: a child's
    environment is readable by its user only, where its command line is readable by everyone (``ps``)."""
    return {
        env_name(f.name): str(getattr(settings, f.name))
        for f in fields_for(command)
        if f.metadata["secret"] and getattr(settings, f.name) is not None
    }
