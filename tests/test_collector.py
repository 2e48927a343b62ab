"""The engine's processes space out Python's garbage collection (see awe/collector.py for why)."""

from __future__ import annotations

import gc
import subprocess
import sys

SETTLE_AND_REPORT = """
import gc
from awe import collector
before = gc.get_freeze_count()
collector.settle()
print(before, gc.get_freeze_count(), *gc.get_threshold())
"""


def test_settle_freezes_what_is_loaded_and_spaces_collections_out() -> None:
    # In a child process: freezing is for the whole process, and this one is shared by every test.
    out = subprocess.run([sys.executable, "-c", SETTLE_AND_REPORT], capture_output=True, text=True, check=True)
    before, frozen, *thresholds = (int(word) for word in out.stdout.split())
    assert before == 0 and frozen > 1000  # the modules' objects are no longer walked at each collection
    assert tuple(thresholds) == (50_000, 20, 20) != gc.get_threshold()
