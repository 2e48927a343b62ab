// One run, live: the diagram with the path taken lit, the steps with their branches side by side,
// the event log, the state after each step, and, while paused, the form to resume it.
import { useEffect, useMemo, useState } from "react";
import { api, type GraphDescription, type RunEvent } from "./api";
import { GraphView } from "./GraphView";
import { useHistory, useRun, useRunTrace } from "./live";
import { PauseForm } from "./PauseForm";
import { shortTime } from "./RunsList";
import { StatePanel } from "./StatePanel";
import { show } from "./text";
import type { BranchTrace } from "./trace";
import { VirtualList } from "./VirtualList";

export function RunView({ runId }: { runId: string }) {
  const [known, setKnown] = useState(false);
  const { trace, tick, connection } = useRunTrace(runId, known);
  const { run, error, reload } = useRun(runId, trace.changes);
  if (run !== null && !known) setKnown(true);
  const entries = useHistory(runId, trace.changes);
  const [graph, setGraph] = useState<GraphDescription | null>(null);
  const graphId = run?.graph_id;
  useEffect(() => {
    if (graphId === undefined) return;
    api.graph(graphId).then(setGraph, () => setGraph(null));
  }, [graphId]);

  // The trace mutates in place; `tick` says when to look at it again.
  const statuses = useMemo(() => trace.nodeStatuses(), [trace, tick]);
  const taken = useMemo(() => new Set(trace.taken), [trace, tick]);
  const steps = useMemo(
    () => [...trace.steps.entries()].map(([step, b]) => ({ step, branches: [...b.values()] })),
    [trace, tick],
  );
  const events = useMemo(() => trace.events.slice(), [trace, tick]);
  const current = trace.currentNodes();

  if (run === null) return <p className={error ? "error" : "muted"}>{error || "Loading the run…"}</p>;
  const status = trace.finished ? (finalStatus(trace.events) ?? run.status) : run.status;
  return (
    <div className="run-view" data-run-id={run.run_id}>
      <header className="run-header">
        <h2>
          Run <span className="run-id">{run.run_id}</span> of{" "}
          <a href={`#/graphs/${encodeURIComponent(run.graph_id)}`}>{run.graph_id}</a>
        </h2>
        <span className={`badge status-${status}`} data-testid="run-status">
          {status}
        </span>
        <span className="muted">
          {" "}
          {connection} · {run.step_count} steps · now:{" "}
          <span data-testid="current-node">{current.join(", ") || "—"}</span>
        </span>
        {!run.finished_at && status !== "completed" ? (
          <button type="button" className="secondary" onClick={() => void api.cancel(run.run_id).then(reload, reload)}>
            Cancel
          </button>
        ) : null}
      </header>
      {run.error ? <pre className="error">{show(run.error)}</pre> : null}
      {run.status === "paused" ? <PauseForm key={run.updated_at} run={run} onResumed={reload} /> : null}
      <div className="run-grid">
        <section className="run-diagram">
          {graph ? (
            <GraphView
              graph={graph}
              statuses={statuses}
              taken={taken}
              paused={run.status === "paused" ? (run.pause?.node ?? null) : null}
            />
          ) : (
            <p className="muted">Loading the graph…</p>
          )}
        </section>
        <section className="path">
          <h3>Path taken</h3>
          <VirtualList
            className="path-list"
            label="path"
            items={steps}
            rowHeight={36}
            follow
            keyOf={(s) => s.step}
            render={(s) => <StepRow step={s.step} branches={s.branches} />}
          />
        </section>
      </div>
      <div className="run-grid">
        <section className="events">
          <h3>
            Events <span className="count">{trace.lastSeq}</span>
            {trace.droppedEvents ? <span className="muted"> (the oldest {trace.droppedEvents} not shown)</span> : null}
          </h3>
          <VirtualList
            className="event-list"
            label="events"
            items={events}
            rowHeight={24}
            follow
            keyOf={(e) => e.seq}
            render={(e) => <EventRow event={e} />}
          />
        </section>
        <StatePanel entries={entries} />
      </div>
    </div>
  );
}

function finalStatus(events: RunEvent[]): string | null {
  const last = events[events.length - 1];
  return last && last.event.startsWith("run_") ? last.event.slice(4) : null;
}

function StepRow({ step, branches }: { step: number; branches: BranchTrace[] }) {
  return (
    <div className="step-row" data-step={step}>
      <span className="step-number">{step}</span>
      {branches.map((b) => (
        <span
          key={b.branch}
          className={`chip status-${b.status}`}
          data-node={b.node}
          data-status={b.status}
          title={b.worker ?? ""}
        >
          {b.branch}
          {b.attempt > 1 ? ` #${b.attempt}` : ""}
        </span>
      ))}
    </div>
  );
}

function EventRow({ event }: { event: RunEvent }) {
  const fields = Object.keys(event.fields).length ? show(event.fields, 0, 300) : "";
  return (
    <div className={`event-row level-${event.level}`} data-event={event.event} title={show(event.fields, 2)}>
      <span className="seq">{event.seq}</span>
      <span className="time">{shortTime(event.time)}</span>
      <span className="event-name">{event.event}</span>
      <span className="event-node">{event.node ?? ""}</span>
      <span className="event-fields">{fields}</span>
    </div>
  );
}
