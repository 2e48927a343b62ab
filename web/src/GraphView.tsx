// One graph drawn with React Flow; during a run, each node lit by what it is doing.
import {
  Background,
  BaseEdge,
  Controls,
  Handle,
  MarkerType,
  Position,
  ReactFlow,
  type Edge,
  type EdgeProps,
  type NodeProps,
} from "@xyflow/react";
import { createContext, useContext, useMemo } from "react";
import type { GraphDescription } from "./api";
import { diagram, type DiagramNode } from "./layout";
import type { NodeStatus } from "./trace";

/**
 * What a run is doing, for the nodes to read. It reaches them through a context, not through their
 * data: React Flow re-adopts a node whose object changes and may drop what it measured of it (its
 * handles, which its edges are drawn from), so the node objects stay the same for the whole run.
 */
interface RunLook {
  statuses: Map<string, NodeStatus>;
  paused: string | null;
}
const RunLookContext = createContext<RunLook | null>(null);

function AweNode({ id, data }: NodeProps<DiagramNode>) {
  const look = useContext(RunLookContext);
  const seen = look?.statuses.get(id);
  const status = look?.paused === id ? "paused" : (seen?.status ?? "idle");
  return (
    <div className={`awe-node kind-${data.kind} status-${status}`} data-status={status}>
      <Handle type="target" position={Position.Top} />
      <div className="awe-node-name">{data.label}</div>
      {data.tool ? <div className="awe-node-tool">tool: {data.tool}</div> : null}
      {data.router ? <div className="awe-node-router">router: {data.router}</div> : null}
      {data.pauses ? <div className="awe-node-pauses">{data.pauses}</div> : null}
      {seen?.visits ? (
        <span className="awe-node-visits" title="times completed">
          ×{seen.visits}
        </span>
      ) : null}
      <Handle type="source" position={Position.Bottom} />
    </div>
  );
}

interface Point {
  x: number;
  y: number;
}

/** An edge along the route dagre chose (its points), smoothed: curves through the midpoints. */
function RoutedEdge({ id, data, label, markerEnd, sourceX, sourceY, targetX, targetY }: EdgeProps) {
  if (data?.selfLoop) {
    const width = typeof data.width === "number" ? data.width : 0;
    return (
      <SelfLoop id={id} label={label} markerEnd={markerEnd} x={sourceX} bottom={sourceY} top={targetY} width={width} />
    );
  }
  const points = (data?.points as Point[] | undefined) ?? [];
  const route =
    points.length >= 2
      ? points
      : [
          { x: sourceX, y: sourceY },
          { x: targetX, y: targetY },
        ];
  let path = `M ${route[0].x} ${route[0].y}`;
  for (let i = 1; i < route.length - 1; i++) {
    const next = route[i + 1];
    const mid = i + 1 === route.length - 1 ? next : { x: (route[i].x + next.x) / 2, y: (route[i].y + next.y) / 2 };
    path += ` Q ${route[i].x} ${route[i].y} ${mid.x} ${mid.y}`;
  }
  if (route.length === 2) path += ` L ${route[1].x} ${route[1].y}`;
  const labelX = typeof data?.labelX === "number" ? data.labelX : route[Math.floor(route.length / 2)].x;
  const labelY = typeof data?.labelY === "number" ? data.labelY : route[Math.floor(route.length / 2)].y;
  return <BaseEdge id={id} path={path} markerEnd={markerEnd} label={label} labelX={labelX} labelY={labelY} />;
}

/** A node's edge to itself: out of its right side low, round, and back into it high. */
function SelfLoop({ id, label, markerEnd, x, bottom, top, width }: SelfLoopProps) {
  const right = x + width / 2;
  const [out, back] = [bottom - (bottom - top) / 3, top + (bottom - top) / 3];
  const path = `M ${right} ${out} C ${right + 70} ${out + 30}, ${right + 70} ${back - 30}, ${right + 2} ${back}`;
  return (
    <BaseEdge id={id} path={path} markerEnd={markerEnd} label={label} labelX={right + 55} labelY={(top + bottom) / 2} />
  );
}

interface SelfLoopProps {
  id: string;
  label: EdgeProps["label"];
  markerEnd?: string;
  x: number;
  bottom: number;
  top: number;
  width: number;
}

const NODE_TYPES = { awe: AweNode };
const TAKEN_ARROW = { type: MarkerType.ArrowClosed, width: 16, height: 16, color: "#16a34a" };
const EDGE_TYPES = { routed: RoutedEdge };
/** Small graphs at their natural size, with room for loops drawn beside the nodes (fitting sees only nodes). */
const FIT = { maxZoom: 1, padding: 0.25 };

interface Props {
  graph: GraphDescription;
  statuses?: Map<string, NodeStatus>;
  paused?: string | null;
  /** The (from, to) pairs a run went along, as `from\u0000to` (RunTrace.taken): their edges are drawn lit. */
  taken?: Set<string>;
}

/** Whether a run went along an edge; a join's edges stand for going from its sources to its target. */
function wasTaken(edge: Edge, taken: Set<string>): boolean {
  const from = (edge.data?.from as string[] | undefined) ?? [edge.source];
  const to = (edge.data?.to as string | undefined) ?? edge.target;
  return from.some((source) => taken.has(`${source}\u0000${to}`));
}

export function GraphView({ graph, statuses, paused, taken }: Props) {
  const base = useMemo(() => diagram(graph), [graph]);
  const look = useMemo(
    () => (statuses === undefined ? null : { statuses, paused: paused ?? null }),
    [statuses, paused],
  );
  const edges = useMemo(
    () =>
      taken === undefined
        ? base.edges
        : base.edges.map((e) =>
            wasTaken(e, taken) ? { ...e, className: `${e.className} taken`, markerEnd: TAKEN_ARROW } : e,
          ),
    [base, taken],
  );
  return (
    <div className="graph-view" data-graph={graph.graph_id}>
      <RunLookContext.Provider value={look}>
        <ReactFlow
          nodes={base.nodes}
          edges={edges}
          nodeTypes={NODE_TYPES}
          edgeTypes={EDGE_TYPES}
          fitView
          fitViewOptions={FIT}
          nodesConnectable={false}
          nodesDraggable={false}
          elementsSelectable={false}
          minZoom={0.2}
        >
          <Background />
          <Controls showInteractive={false} />
        </ReactFlow>
      </RunLookContext.Provider>
      <div className="legend">
        <span className="legend-plain">edge</span>
        <span className="legend-conditional">router branch</span>
        <span className="legend-join">join</span>
        {taken ? <span className="legend-taken">taken by this run</span> : null}
      </div>
    </div>
  );
}
