"""The graph model: nodes, edges, conditional edges, validation and loading."""

from awe.graph.builder import Graph
from awe.graph.compiled import END, CompiledGraph, NodeTimeout, RouteError
from awe.graph.context import Context
from awe.graph.errors import GraphError
from awe.graph.policy import RetryPolicy
from awe.graph.registry import GraphLoadError, load_graphs, load_graphs_or_exit

__all__ = ["END", "CompiledGraph", "Context", "Graph", "GraphError", "GraphLoadError", "NodeTimeout", "RetryPolicy", "RouteError", "load_graphs", "load_graphs_or_exit"]
