"""The ``awe`` command, and the code that assembles each kind of process.

This package sits above every layer: it reads the settings, then builds a
coordinator process (store, ZeroMQ endpoint, coordinator, HTTP app, signal
handling) or a worker process, or supervises both (``awe up``). Nothing below
it imports it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from awe.cli.parser import parse
from awe.settings import BACKUP, CLIENTS, COORDINATOR, GRAPH, KEYS, REVIEW, WORKER


def main(argv: Sequence[str] | None = None) -> int:
    invocation = parse(argv)
    command, settings = invocation.command, invocation.settings
    if command == GRAPH:
        from awe.cli.client import run_graph_command

        return run_graph_command(settings, invocation.arguments)
    if command == BACKUP:
        from awe.cli.backup_command import run_backup

        return run_backup(settings, invocation.arguments)
    if command == KEYS:
        from awe.cli.keys_command import run_keys

        return run_keys(invocation.arguments)
    if command == REVIEW:
        from awe.cli.review_client import run_review

        return run_review(settings, invocation.arguments)
    if command in CLIENTS:
        from awe.cli.runs_client import run_client_command

        return run_client_command(command, settings, invocation.arguments)
    if command == COORDINATOR:
        from awe.cli.coordinator_process import run_coordinator

        return run_coordinator(settings)
    if command == WORKER:
        from awe.cli.worker_process import run_worker

        return run_worker(settings)
    from awe.cli.up import run_up

    return run_up(settings)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
