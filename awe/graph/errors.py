"""Errors raised while building or compiling a graph, and what a graph id may be."""

import re

GRAPH_ID_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
"""Graph ids (fullmatch), Python and JSON graphs alike: safe in URLs, file names and logs."""


class GraphError(ValueError):
    """A graph is malformed; the message names the graph and the offending node or edge."""
