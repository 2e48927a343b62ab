"""``awe worker``: one worker process connected to a coordinator."""

from __future__ import annotations

import asyncio
import os
import sys

import structlog

from awe import collector, logs
from awe.graph import load_graphs_or_exit
from awe.settings import Settings
from awe.transport import flush_and_terminate, is_local_address
from awe.transport.curve import KeyFolderError, load_client_keys
from awe.workers.worker import Worker, default_worker_id

READY_LINE = "awe worker started"


def run_worker(settings: Settings) -> int:
    worker_id = settings.worker_id or default_worker_id()
    logs.configure(
        f"worker-{worker_id}",
        settings.log_dir,
        role="worker",
        level=settings.log_level,
        max_bytes=settings.log_max_bytes,
        backups=settings.log_backups,
        console=settings.log_console,
        context={"worker": worker_id},
    )
    graphs = load_graphs_or_exit(settings.graphs)
    try:
        keys = load_client_keys(settings.curve_keys) if settings.curve_keys else None
    except KeyFolderError as exc:
        print(f"awe: cannot start the worker: {exc}", file=sys.stderr)
        return 2
    worker = Worker(
        connect=settings.connect,
        graphs=graphs,
        worker_id=worker_id,
        capacity=settings.capacity,
        async_capacity=settings.async_capacity,
        state_cache_bytes=settings.state_cache_mb * 1024 * 1024,
        heartbeat_interval=settings.heartbeat_interval,
        drain_timeout=settings.drain_timeout,
        curve_keys=keys,
        max_frame_bytes=settings.max_frame_bytes,
    )
    if keys is None and not is_local_address(settings.connect):
        structlog.get_logger("awe.worker").warning(
            "worker_link_unencrypted",
            connect=settings.connect,
            reason="jobs and results cross the network in clear, and this worker cannot tell the real coordinator "
            "from an impostor: give it --curve-keys (see SECURITY.md)",
        )
    secured = " curve=on" if keys is not None else ""
    collector.settle()  # before the ready line: what comes after it should be the loop, at once
    print(f"{READY_LINE} id={worker_id} connect={settings.connect}{secured}", flush=True)
    asyncio.run(worker.run())
    if any(not thread.done() for thread in worker.abandoned):
        # A normal exit would join the node threads still running, and they may never return.
        sys.stdout.flush()
        flush_and_terminate()
        os._exit(worker.exit_code)
    return worker.exit_code
