// The page: graphs and runs on the left, the chosen graph or run on the right; the address's
// hash (#/graphs/ID, #/runs/ID) says which, so a run's view can be linked and reloaded.
import { useEffect, useState } from "react";
import { api, type GraphDescription } from "./api";
import { GraphPage } from "./GraphPage";
import { RunsList } from "./RunsList";
import { RunView } from "./RunView";
import { TokenForm } from "./TokenForm";

type Route = { kind: "graph"; id: string } | { kind: "run"; id: string } | { kind: "home" };

function route(): Route {
  const match = /^#\/(graphs|runs)\/(.+)$/.exec(location.hash);
  if (match === null) return { kind: "home" };
  return { kind: match[1] === "graphs" ? "graph" : "run", id: decodeURIComponent(match[2]) };
}

export function App() {
  const [where, setWhere] = useState(route);
  const [graphs, setGraphs] = useState<GraphDescription[]>([]);
  const [error, setError] = useState("");
  useEffect(() => {
    const onHash = () => setWhere(route());
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);
  useEffect(() => {
    api.graphs().then(setGraphs, (e: Error) => setError(e.message));
  }, []);
  const shown = where.kind === "home" && graphs.length ? { kind: "graph" as const, id: defaultGraph(graphs) } : where;
  return (
    <div className="app">
      <aside>
        <h1>
          <a href="#/">awe</a>
        </h1>
        <section className="graphs">
          <h2>Graphs</h2>
          {error ? <p className="error">{error}</p> : null}
          <ul>
            {graphs.map((g) => (
              <li key={g.graph_id}>
                <a
                  href={`#/graphs/${encodeURIComponent(g.graph_id)}`}
                  className={shown.kind === "graph" && shown.id === g.graph_id ? "selected" : undefined}
                  data-graph-id={g.graph_id}
                >
                  {g.graph_id}
                </a>
              </li>
            ))}
          </ul>
        </section>
        <RunsList graphIds={graphs.map((g) => g.graph_id)} selected={shown.kind === "run" ? shown.id : null} />
      </aside>
      <main>
        <TokenForm />
        {shown.kind === "graph" ? <GraphPage key={shown.id} graphId={shown.id} /> : null}
        {shown.kind === "run" ? <RunView key={shown.id} runId={shown.id} /> : null}
        {shown.kind === "home" ? <p className="muted">No graph is registered yet.</p> : null}
      </main>
    </div>
  );
}

function defaultGraph(graphs: GraphDescription[]): string {
  return graphs.some((g) => g.graph_id === "code_review_agent") ? "code_review_agent" : graphs[0].graph_id;
}
