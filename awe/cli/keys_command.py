"""``awe keys``: make a CURVE key folder, or add a worker's key to one, and say what goes where."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from awe.transport.curve import ALLOWED_WORKERS, COORDINATOR_SECRET, KeyFolderError, add_worker_key, create_key_folder


def run_keys(arguments: dict[str, Any]) -> int:
    out = Path(arguments["out"])
    try:
        if arguments.get("add_worker"):
            names = [add_worker_key(out, arguments["add_worker"]).name]
        else:
            names = create_key_folder(out, arguments["workers"])
    except (KeyFolderError, OSError) as exc:
        print(f"awe: {exc}", file=sys.stderr)
        return 2
    print(where_keys_go(out, names, new_folder=not arguments.get("add_worker")))
    return 0


def where_keys_go(out: Path, names: list[str], *, new_folder: bool) -> str:
    """What to copy where, and the flags that use it."""
    lines = []
    if new_folder:
        lines += [
            f"Wrote the coordinator's key pair ({out / COORDINATOR_SECRET}) and {len(names)} worker key pairs.",
            "",
            "On the coordinator's machine (keep the folder there; the secret key never leaves it):",
            f"  awe coordinator --curve-keys {out} --bind tcp://0.0.0.0:5555",
            f"  (or everything on one machine: awe up --curve-keys {out} --workers {len(names)})",
            "",
        ]
    else:
        lines += [
            f"Added the worker key {names[0]}: its public key is in {out / ALLOWED_WORKERS}, and the",
            "running coordinator accepts it from its next connection, without a restart.",
            "",
        ]
    lines.append("Copy each worker's folder to its machine (privately: it holds the worker's secret key), then run:")
    for name in names:
        lines.append(f"  {out / name}/  ->  awe worker --curve-keys <copied folder> --connect tcp://<coordinator>:5555")
    lines += [
        "",
        f"To refuse a worker later, delete its public key from {out / ALLOWED_WORKERS} (effective on its next "
        "connection; restart the coordinator to cut it off now).",
    ]
    return "\n".join(lines)
