"""awe, the Agent Workflow Engine.

Define a graph with :class:`Graph`, serve it with ``awe up --graphs my_module``,
and start runs over HTTP. Everything else in the package is machinery.
"""

from awe.graph import END, Context, Graph, GraphError, Interrupt, RetryPolicy, Send, tool

__all__ = ["END", "Context", "Graph", "GraphError", "Interrupt", "RetryPolicy", "Send", "tool"]
__version__ = "0.1.0"
