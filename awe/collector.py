"""Python's cyclic garbage collector, set for a process that holds thousands of runs.

The collector's young generation is collected every 700 allocations (the default), and every
so often a full collection walks *every* live object. A coordinator holding 10,000 waiting
runs has millions of them: under many_waiting it spent 1.15 s of 8.5 s in the collector, full
collections taking 60 ms each, the event loop stopped for all that time. Almost nothing it
allocates forms a cycle (records, messages and states are freed by reference counting as
soon as they are dropped), so the collection finds next to nothing.

So each process, once it has loaded its code and graphs, freezes what it holds then (those
objects are never walked again) and collects the young generation after 50,000 allocations.
Measured on many_waiting: time in the collector 1.15 s -> 0.04 s, wall 8.46 -> 6.71 s, peak
memory unchanged (212 -> 215 MB).
"""

from __future__ import annotations

import gc

THRESHOLDS = (50_000, 20, 20)
"""Allocations before a young collection; young collections before a middle one; middle before a full one."""


def settle() -> None:
    """Freeze what the process holds now and space collections out (call once, before serving)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
