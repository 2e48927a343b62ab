"""Errors raised while building or compiling a graph."""


class GraphError(ValueError):
    """A graph is malformed; the message names the graph and the offending node or edge."""
