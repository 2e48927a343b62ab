"""``awe coordinator``: assemble the coordinator process, serve until told to stop, exit with a reason.

The parts are built in the order they depend on each other and closed in the
reverse order: the store, the ZeroMQ endpoint, the coordinator (which
recovers unfinished runs), then the HTTP server. On SIGTERM or SIGINT the
coordinator drains while the API still answers (``/healthz`` says
``stopping``); then the HTTP server, the endpoint and the store close. If a
background task dies, ``/healthz`` says ``failed`` and names it, and the
process stops the same way and exits with ``EXIT_SOFTWARE`` for its
supervisor to restart it.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import structlog
import zmq
from aiohttp import web

from awe import collector, logs
from awe.coordinator.coordinator import Coordinator
from awe.exit_codes import EXIT_SOFTWARE
from awe.graph import CompiledGraph, load_graphs_or_exit
from awe.http import create_app
from awe.http.security import ApiPolicy, is_loopback
from awe.settings import Settings, api_token
from awe.store.sqlite import Store
from awe.store.values import ValueFileError
from awe.tasks import BackgroundTasks
from awe.transport import RouterEndpoint, is_local_address
from awe.transport.curve import KeyFolderError, load_server_keys

READY_LINE = "awe coordinator ready"
"""Printed to stdout once the API listens; supervisors and tests wait for it."""

log = structlog.get_logger("awe.coordinator")


class RefusedToStart(Exception):
    """A configuration the coordinator will not serve (the message says why and what to change)."""


def api_policy(settings: Settings) -> ApiPolicy:
    """Who may call the API; :class:`RefusedToStart` for an API open to the network without a token."""
    try:
        token = api_token(settings)
    except ValueError as exc:
        raise RefusedToStart(str(exc)) from None
    if token is None and not is_loopback(settings.host) and not settings.allow_no_token:
        raise RefusedToStart(
            f"the API would listen on {settings.host or 'every address'} without a token, so anyone who can reach "
            "the port could start runs (which run code) and read every state. Give it a token (--token-file FILE "
            "or AWE_TOKEN), bind it to 127.0.0.1, or pass --allow-no-token if the network is trusted"
        )
    return ApiPolicy.from_settings(settings, token)


class InsecureBind(Exception):
    """The worker socket would be open to the network with no authentication, and nobody said that is wanted."""


def worker_endpoint(settings: Settings) -> RouterEndpoint:
    """The socket workers connect to: with CURVE if keys are given; on the network only with them (or if told).

    Raises :class:`InsecureBind`, or :class:`~awe.transport.curve.KeyFolderError` for unusable keys.
    """
    keys = load_server_keys(settings.curve_keys) if settings.curve_keys else None
    if keys is None and not settings.allow_insecure_workers and not is_local_address(settings.bind):
        raise InsecureBind(
            f"--bind {settings.bind} is reachable from other machines, and without CURVE keys anyone who reaches "
            "it can join as a worker, read every job and forge results. Make keys with awe keys --out DIR and "
            "give --curve-keys DIR (see SECURITY.md), bind a loopback address (tcp://127.0.0.1:5555), "
            "or pass --allow-insecure-workers on if the network itself is trusted"
        )
    peer_timeout = settings.heartbeat_interval * settings.heartbeat_liveness * 2
    return RouterEndpoint(
        settings.bind, curve=keys, max_frame_bytes=settings.max_frame_bytes, peer_timeout=peer_timeout
    )


@dataclass
class RunningCoordinator:
    coordinator: Coordinator
    tasks: BackgroundTasks
    url: str
    bind: str


@asynccontextmanager
async def coordinator_services(
    settings: Settings, graphs: dict[str, CompiledGraph]
) -> AsyncIterator[RunningCoordinator]:
    """A coordinator serving its API and its workers; stopped, drained and closed on exit.

    Raises :class:`RefusedToStart` before opening anything if the API's settings are unsafe.
    """
    policy = api_policy(settings)
    tasks = BackgroundTasks()
    store = Store(settings.db, synchronous=settings.durability.upper())
    await store.open(tasks)
    try:
        endpoint = worker_endpoint(settings)
        try:
            coordinator = Coordinator(graphs=graphs, store=store, endpoint=endpoint, tasks=tasks, settings=settings)
            await coordinator.start()
            runner = web.AppRunner(create_app(coordinator, policy=policy), access_log=None, shutdown_timeout=2.0)
            await runner.setup()
            try:
                site = web.TCPSite(runner, settings.host, settings.port)
                await site.start()
                url = f"http://{settings.host}:{_bound_port(runner, settings.port)}"
                yield RunningCoordinator(coordinator, tasks, url, endpoint.address)
            finally:
                await coordinator.stop()
                await runner.cleanup()
        finally:
            endpoint.close()
    finally:
        await store.close()  # flushes what is queued; only then may the rest of the tasks go
        await tasks.cancel()


def _bound_port(runner: web.AppRunner, asked: int) -> int:
    """The port the API listens on (the one asked for, or the one the OS picked for port 0)."""
    for address in runner.addresses:
        if isinstance(address, tuple):
            return int(address[1])
    return asked


def run_coordinator(settings: Settings) -> int:
    logs.configure(
        "coordinator",
        settings.log_dir,
        role="coordinator",
        level=settings.log_level,
        max_bytes=settings.log_max_bytes,
        backups=settings.log_backups,
        console=settings.log_console,
    )
    graphs = load_graphs_or_exit(settings.graphs)
    collector.settle()
    try:
        return asyncio.run(_serve(settings, graphs))
    except (OSError, zmq.ZMQError, RefusedToStart, ValueFileError) as exc:
        print(f"awe: cannot start the coordinator: {exc}", file=sys.stderr)
        return 1
    except (InsecureBind, KeyFolderError) as exc:
        print(f"awe: cannot start the coordinator: {exc}", file=sys.stderr)
        return 2


async def _serve(settings: Settings, graphs: dict[str, CompiledGraph]) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with coordinator_services(settings, graphs) as running:
        log.info("coordinator_ready", http=running.url, bind=running.bind, db=settings.db)
        print(f"{READY_LINE} http={running.url} bind={running.bind} db={settings.db}", flush=True)
        stopped = asyncio.ensure_future(stop.wait())
        failed = asyncio.ensure_future(running.tasks.fatal.wait())
        await asyncio.wait([stopped, failed], return_when=asyncio.FIRST_COMPLETED)
        for waiter in (stopped, failed):
            waiter.cancel()
        if running.tasks.failures:
            log.error("coordinator_exiting", reason="a background task died", failed_tasks=running.tasks.failures)
    return EXIT_SOFTWARE if running.tasks.failures else 0
