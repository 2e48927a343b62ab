"""``awe coordinator``: the process that runs the coordinator and its HTTP API."""

from __future__ import annotations

import argparse
import sys

import structlog
import zmq
from aiohttp import web

from awe import logs
from awe.coordinator.service import Coordinator
from awe.graph import load_graphs_or_exit
from awe.http import create_app
from awe.store import Store

READY_LINE = "awe coordinator ready"
"""Printed to stdout once the API listens; supervisors and tests wait for it."""


def run_coordinator(args: argparse.Namespace) -> int:
    logs.configure("coordinator", args.log_dir, level=args.log_level)
    log = structlog.get_logger("awe.coordinator")
    graphs = load_graphs_or_exit(args.graphs)
    coordinator = Coordinator(
        graphs=graphs,
        store=Store(args.db),
        bind=args.bind,
        heartbeat_interval=args.heartbeat_interval,
        heartbeat_liveness=args.heartbeat_liveness,
        drain_timeout=args.drain_timeout,
    )

    def announce(_: str) -> None:
        url = f"http://{args.host}:{args.port}"
        log.info("coordinator_ready", http=url, bind=args.bind, db=args.db)
        print(f"{READY_LINE} http={url} bind={args.bind} db={args.db}", flush=True)

    try:
        web.run_app(
            create_app(coordinator),
            host=args.host,
            port=args.port,
            print=announce,
            access_log=None,
            shutdown_timeout=2.0,
        )
    except (OSError, zmq.ZMQError) as exc:
        print(f"awe: cannot start the coordinator: {exc}", file=sys.stderr)
        return 1
    return 0
