"""``awe backup FILE``: copy the store to FILE (and FILE-values) while the engine runs, and say how to restore."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from awe.settings import Settings
from awe.store.backup import BackupError, back_up


def run_backup(settings: Settings, arguments: dict[str, Any]) -> int:
    try:
        made = back_up(Path(settings.db), Path(arguments["target"]))
    except (BackupError, OSError) as exc:
        print(f"awe: {exc}", file=sys.stderr)
        return 1
    values = f" and {made.values} ({made.value_bytes} bytes of large values)" if made.values is not None else ""
    runs = f"{made.runs} run{'' if made.runs == 1 else 's'}"
    print(f"Copied {settings.db} to {made.database} ({runs}){values}.")
    print(f"To restore: stop the engine, then start it with --db {made.database} (or copy the files back).")
    return 0
