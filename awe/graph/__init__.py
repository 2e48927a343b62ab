"""The graph model: nodes, edges, conditional edges, validation and loading."""

from awe.graph.builder import Graph
from awe.graph.compiled import END, CompiledGraph, Join, NodeTimeout, RouteError, Send
from awe.graph.context import Context, Interrupt
from awe.graph.errors import GraphError
from awe.graph.policy import RetryPolicy
from awe.graph.reducers import Reducer, Write, WriteConflict, apply_writes
from awe.graph.registry import GraphLoadError, load_graphs, load_graphs_or_exit
from awe.graph.tools import Tool, ToolError, registered_tools, tool

__all__ = [
    "END",
    "CompiledGraph",
    "Context",
    "Graph",
    "GraphError",
    "GraphLoadError",
    "Interrupt",
    "Join",
    "NodeTimeout",
    "Reducer",
    "RetryPolicy",
    "RouteError",
    "Send",
    "Tool",
    "ToolError",
    "Write",
    "WriteConflict",
    "apply_writes",
    "load_graphs",
    "load_graphs_or_exit",
    "registered_tools",
    "tool",
]
