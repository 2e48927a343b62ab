// A graph description (GET /graphs/{id}) as React Flow nodes and edges, placed by dagre.
//
// What the engine's topology has, each drawn so it can be told apart: plain edges (solid), the
// branches of a router (dashed, labelled with the router's key), joins (a small "join" node that
// every source feeds, then one edge to the target), START and END. dagre ranks a cycle by
// reversing one of its edges and routes every edge around the nodes, so a loop back to an earlier
// node is drawn going up beside the others rather than through them.
import dagre from "@dagrejs/dagre";
import { MarkerType, type Edge, type Node } from "@xyflow/react";
import { END, type GraphDescription } from "./api";

export const START = "__start__";
export type NodeKind = "node" | "start" | "end" | "join";
export interface NodeData extends Record<string, unknown> {
  label: string;
  kind: NodeKind;
  router?: string;
  /** A JSON graph node's tool. */
  tool?: string;
  /** "pause before", "pause after", or both: a declared interrupt. */
  pauses?: string;
}
export type DiagramNode = Node<NodeData>;

const SIZE: Record<NodeKind, { width: number; height: number }> = {
  node: { width: 190, height: 62 },
  start: { width: 90, height: 34 },
  end: { width: 90, height: 34 },
  join: { width: 56, height: 28 },
};

export function diagram(graph: GraphDescription): { nodes: DiagramNode[]; edges: Edge[] } {
  const routers = new Map(graph.conditional_edges.map((c) => [c.source, c.router]));
  const tools = new Map((graph.definition?.nodes ?? []).map((n) => [n.name, n.tool]));
  const pauses = (name: string) =>
    [graph.interrupt_before.includes(name) ? "before" : "", graph.interrupt_after.includes(name) ? "after" : ""]
      .filter(Boolean)
      .join(" and ");
  const nodes: DiagramNode[] = [
    { id: START, type: "awe", position: { x: 0, y: 0 }, data: { label: "START", kind: "start" } },
    ...graph.nodes.map((n): DiagramNode => ({
      id: n.name,
      type: "awe",
      position: { x: 0, y: 0 },
      data: {
        label: n.name,
        kind: "node",
        router: routers.get(n.name),
        tool: tools.get(n.name),
        pauses: pauses(n.name) ? `pauses ${pauses(n.name)}` : undefined,
      },
    })),
    { id: END, type: "awe", position: { x: 0, y: 0 }, data: { label: "END", kind: "end" } },
  ];
  const edges: Edge[] = [{ id: "e:start", source: START, target: graph.entry_point, className: "edge-plain" }];
  graph.edges.forEach((e, i) =>
    edges.push({ id: `e:${i}`, source: e.source, target: e.target, className: "edge-plain" }),
  );
  graph.conditional_edges.forEach((c, i) =>
    Object.entries(c.branches).forEach(([key, target], j) =>
      edges.push({
        id: `c:${i}:${j}`,
        source: c.source,
        target,
        label: key,
        className: "edge-conditional",
        data: { conditional: true },
      }),
    ),
  );
  graph.joins.forEach((join, i) => {
    const id = `__join_${i}__`;
    nodes.push({ id, type: "awe", position: { x: 0, y: 0 }, data: { label: "join", kind: "join" } });
    join.sources.forEach((source, j) =>
      edges.push({
        id: `j:${i}:${j}`,
        source,
        target: id,
        className: "edge-join",
        data: { from: [source], to: join.target },
      }),
    );
    edges.push({
      id: `j:${i}:out`,
      source: id,
      target: join.target,
      className: "edge-join",
      data: { from: join.sources, to: join.target },
    });
  });
  return place(nodes, edges);
}

/** Each node's position and each edge's route (its `data.points`, drawn by RoutedEdge), by dagre. */
function place(nodes: DiagramNode[], edges: Edge[]): { nodes: DiagramNode[]; edges: Edge[] } {
  const g = new dagre.graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: "TB", nodesep: 40, ranksep: 56, edgesep: 20 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of nodes) g.setNode(n.id, { ...SIZE[n.data.kind] }); // dagre writes x and y into the label
  for (const e of edges) {
    // A label needs room between the ranks.
    g.setEdge(e.source, e.target, e.label ? { width: 60, height: 18, labelpos: "c" } : {}, e.id);
  }
  dagre.layout(g);
  const placed = nodes.map((n) => {
    const { x, y } = g.node(n.id);
    const { width, height } = SIZE[n.data.kind];
    return { ...n, position: { x: x - width / 2, y: y - height / 2 }, width, height };
  });
  const routed = edges.map((e) => {
    const label = g.edge({ v: e.source, w: e.target, name: e.id });
    const points = label.points ?? [];
    return {
      ...e,
      type: "routed",
      markerEnd: { type: MarkerType.ArrowClosed, width: 16, height: 16 },
      // A node's edge to itself is drawn as a loop on its right (RoutedEdge), not along dagre's route.
      data: {
        ...e.data,
        points,
        labelX: label.x,
        labelY: label.y,
        selfLoop: e.source === e.target,
        width: g.node(e.source).width,
      },
    };
  });
  return { nodes: placed, edges: routed };
}
