// The runs, filtered by status and graph, kept current by polling GET /runs?since=CURSOR.
//
// The first page comes filtered by the server: the newest 1000 runs (the API's largest page; it has
// no cursor to page further back). The polls are not filtered, because a run that leaves the filter
// (running -> completed under "running") must leave the list too.
import { useEffect, useState } from "react";
import { api, cursorAfter, STATUSES, type Run, type RunFilter } from "./api";
import { VirtualList } from "./VirtualList";

const FIRST_PAGE = 1000;
const POLL_PAGE = 1000;
const POLL_MS = 1000;
/** Runs kept in the list; the oldest (by creation) go first. */
const KEEP = 5000;

function matches(run: Run, filter: RunFilter): boolean {
  return (!filter.status || run.status === filter.status) && (!filter.graph_id || run.graph_id === filter.graph_id);
}

function useRuns(filter: RunFilter): { runs: Run[]; error: string; capped: boolean } {
  const [runs, setRuns] = useState<Run[]>([]);
  const [capped, setCapped] = useState(false);
  const [error, setError] = useState("");
  const { status, graph_id } = filter;
  useEffect(() => {
    const wanted: RunFilter = { status, graph_id };
    const byId = new Map<string, Run>();
    let cursor = "";
    let stopped = false;
    let timer = 0;
    const publish = () => {
      let list = [...byId.values()].sort((a, b) =>
        a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0,
      );
      if (list.length > KEEP) {
        for (const r of list.slice(KEEP)) byId.delete(r.run_id);
        list = list.slice(0, KEEP);
      }
      setRuns(list);
    };
    const poll = async () => {
      try {
        let changed = false;
        for (;;) {
          const page = await api.runsChanged(cursor, POLL_PAGE);
          if (stopped) return;
          for (const r of page.runs) {
            if (matches(r, wanted)) byId.set(r.run_id, r);
            else byId.delete(r.run_id);
            changed = true;
          }
          cursor = page.next_cursor;
          if (page.runs.length < POLL_PAGE) break;
        }
        if (changed) publish();
        setError("");
      } catch (e) {
        setError(String((e as Error).message ?? e));
      }
      if (!stopped) timer = window.setTimeout(poll, POLL_MS);
    };
    const start = async () => {
      try {
        // The polls start after the latest change either answer shows: every later change is polled, every
        // earlier one is in the filtered page (asked second). The unfiltered few keep a filter that matches
        // nothing from scanning every run ever changed.
        const recent = await api.runs({}, 50);
        const first = await api.runs(wanted, FIRST_PAGE);
        if (stopped) return;
        for (const r of first) byId.set(r.run_id, r);
        setCapped(first.length === FIRST_PAGE);
        cursor = cursorAfter([...recent, ...first]);
        publish();
      } catch (e) {
        setError(String((e as Error).message ?? e));
      }
      if (!stopped) void poll();
    };
    setRuns([]);
    setCapped(false);
    void start();
    return () => {
      stopped = true;
      window.clearTimeout(timer);
    };
  }, [status, graph_id]);
  return { runs, error, capped };
}

export function RunsList({ graphIds, selected }: { graphIds: string[]; selected: string | null }) {
  const [status, setStatus] = useState("");
  const [graphId, setGraphId] = useState("");
  const { runs, error, capped } = useRuns({ status: status || undefined, graph_id: graphId || undefined });
  return (
    <section className="runs">
      <h2>
        Runs{" "}
        <span className="count" data-testid="runs-count">
          {runs.length}
        </span>
      </h2>
      <div className="filters">
        <label>
          status{" "}
          <select name="status" value={status} onChange={(e) => setStatus(e.target.value)}>
            <option value="">all</option>
            {STATUSES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
        <label>
          graph{" "}
          <select name="graph" value={graphId} onChange={(e) => setGraphId(e.target.value)}>
            <option value="">all</option>
            {graphIds.map((g) => (
              <option key={g}>{g}</option>
            ))}
          </select>
        </label>
      </div>
      {error ? <p className="error">{error}</p> : null}
      {capped ? (
        <p className="muted runs-note">
          The newest {FIRST_PAGE} runs when the page opened, and every run since; narrow the filters for older ones.
        </p>
      ) : null}
      <VirtualList
        className="runs-list"
        label="runs"
        items={runs}
        rowHeight={44}
        keyOf={(r) => r.run_id}
        render={(r) => (
          <a
            href={`#/runs/${encodeURIComponent(r.run_id)}`}
            className={`run-row${r.run_id === selected ? " selected" : ""}`}
            data-run-id={r.run_id}
            data-status={r.status}
          >
            <span className={`badge status-${r.status}`}>{r.status}</span>
            <span className="run-graph">{r.graph_id}</span>
            <span className="run-id">{r.run_id}</span>
            <span className="run-meta">
              {r.step_count} steps · {shortTime(r.created_at)}
            </span>
          </a>
        )}
      />
    </section>
  );
}

export function shortTime(iso: string | null): string {
  if (!iso) return "";
  const t = iso.indexOf("T");
  return t < 0 ? iso : iso.slice(t + 1, t + 13);
}
