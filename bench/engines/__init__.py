"""The engines ``compare.py`` measures, one module each, all behind the same small interface.

Each module has one class with ``start(folder, pids)`` / ``stop()``, ``processes()`` (the pids
whose memory is the engine's), and one method per piece of work: ``chain`` (concurrent runs of a
10-node chain), ``chain3`` (one short run, to its result), ``fanout`` (one CPU fan-out run),
``start_waiting`` / ``finished_waiting`` (many runs that each wait 1 s) and, where it means
something, ``recovery``. ``compare.py`` times them all the same way, so that what differs between
two columns of its table is the engine, not the stopwatch.

The peers' modules import their packages (the ``bench`` extra) only when they start, so that
one missing package marks its column "not installed" instead of stopping the comparison.
"""
