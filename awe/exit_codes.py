"""Exit codes an awe process uses to tell its supervisor why it stopped.

Values follow sysexits.h, so a supervisor that knows nothing of awe still
reads them sensibly. ``awe up`` restarts a child after either of these; it
treats neither as a failure to start.
"""

EXIT_SOFTWARE = 70
"""A background task of the process died (``EX_SOFTWARE``, an internal error): its traceback is in
the process's log file, and a fresh process picks up where this one stopped."""

EXIT_STUCK = 75
"""Every slot of a worker is held by a node thread that outlived its timeout: start a fresh process.
(``EX_TEMPFAIL``: try again, the failure is temporary.)"""

RESTARTABLE = frozenset({EXIT_SOFTWARE, EXIT_STUCK})
"""Exit codes that ask for a restart rather than report a broken configuration."""
