// One graph: its diagram, what it is made of, and a form to start a run of it.
import { useEffect, useState } from "react";
import { api, type GraphDescription } from "./api";
import { GraphView } from "./GraphView";

export function GraphPage({ graphId }: { graphId: string }) {
  const [graph, setGraph] = useState<GraphDescription | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    setGraph(null);
    setError("");
    api.graph(graphId).then(setGraph, (e: Error) => setError(e.message));
  }, [graphId]);
  if (error) return <p className="error">{error}</p>;
  if (graph === null) return <p className="muted">Loading {graphId}…</p>;
  return (
    <div className="graph-page">
      <header>
        <h2>{graph.graph_id}</h2>
        <span className="muted">
          version {graph.version} · {graph.source} · {graph.nodes.length} nodes
          {Object.keys(graph.reducers).length
            ? ` · reducers: ${Object.entries(graph.reducers)
                .map(([k, r]) => `${k} (${r})`)
                .join(", ")}`
            : ""}
        </span>
      </header>
      <GraphView graph={graph} />
      <StartRun graphId={graph.graph_id} />
    </div>
  );
}

function StartRun({ graphId }: { graphId: string }) {
  const [text, setText] = useState("{}");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const start = async () => {
    setError("");
    let state: unknown;
    try {
      state = JSON.parse(text);
    } catch (e) {
      setError(`The initial state is not valid JSON: ${(e as Error).message}`);
      return;
    }
    if (state === null || typeof state !== "object" || Array.isArray(state)) {
      setError("The initial state must be a JSON object.");
      return;
    }
    setBusy(true);
    try {
      const { run_id } = await api.startRun(graphId, state as Record<string, never>);
      location.hash = `#/runs/${encodeURIComponent(run_id)}`;
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="start-run">
      <h3>Start a run</h3>
      <label>
        initial state (JSON object)
        <textarea name="initial_state" rows={6} value={text} onChange={(e) => setText(e.target.value)} />
      </label>
      <button type="button" disabled={busy} onClick={() => void start()}>
        Start run
      </button>
      {error ? <p className="error">{error}</p> : null}
    </section>
  );
}
