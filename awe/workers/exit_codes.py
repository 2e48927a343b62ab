"""Exit codes a worker process uses to tell its supervisor why it stopped."""

EXIT_STUCK = 75
"""Every slot is held by a node thread that outlived its timeout: start a fresh process.

(75 is ``EX_TEMPFAIL`` in sysexits.h: try again, the failure is temporary.)"""
