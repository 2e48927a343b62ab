// The state after each step, with the keys that step changed highlighted (and what they were).
import { useState } from "react";
import type { HistoryEntry, JsonObject } from "./api";
import { show } from "./text";
import { VirtualList } from "./VirtualList";

export function StatePanel({ entries }: { entries: HistoryEntry[] }) {
  const [chosen, setChosen] = useState<number | null>(null); // null: follow the latest
  const index = chosen !== null && chosen < entries.length ? chosen : entries.length - 1;
  const entry = index >= 0 ? entries[index] : null;
  const before = previousState(entries, index);
  return (
    <section className="state-panel">
      <h3>State after each step</h3>
      <div className="state-columns">
        <VirtualList
          className="history-list"
          label="steps"
          items={entries}
          rowHeight={26}
          follow={chosen === null}
          keyOf={(e, i) => `${i}:${e.step}:${e.branch}:${e.attempt}`}
          render={(e, i) => (
            <button
              type="button"
              className={`history-row${i === index ? " selected" : ""} status-${e.status}`}
              onClick={() => setChosen(i === entries.length - 1 ? null : i)}
            >
              {e.step}. {e.branch}
              {e.attempt > 1 ? ` (attempt ${e.attempt})` : ""} · {e.status}
            </button>
          )}
        />
        {entry === null ? <p className="muted">No step yet.</p> : <StateTable entry={entry} before={before} />}
      </div>
    </section>
  );
}

function previousState(entries: HistoryEntry[], index: number): JsonObject | null {
  for (let i = index - 1; i >= 0; i--) {
    const e = entries[i];
    if (e.state_after !== null && e.step < entries[index].step) return e.state_after;
  }
  return null;
}

function StateTable({ entry, before }: { entry: HistoryEntry; before: JsonObject | null }) {
  const state = entry.state_after;
  const changed = new Set(Object.keys(entry.delta ?? {}));
  const removed = entry.removed ?? [];
  return (
    <div className="state-table" data-testid="state-table">
      <p className="muted">
        step {entry.step}, {entry.branch} ({entry.status}
        {entry.duration_ms !== null ? `, ${entry.duration_ms.toFixed(1)} ms` : ""}
        {entry.worker_id ? `, on ${entry.worker_id}` : ""})
      </p>
      {entry.error ? <pre className="error">{show(entry.error)}</pre> : null}
      {state === null ? (
        <p className="muted">The state after this step is not known yet (its step is under way).</p>
      ) : (
        <table>
          <tbody>
            {Object.keys(state)
              .sort()
              .map((key) => (
                <tr key={key} className={changed.has(key) ? "changed" : undefined} data-key={key}>
                  <th>{key}</th>
                  <td>
                    <pre className="value">{show(state[key])}</pre>
                    {changed.has(key) && before !== null ? <pre className="was">was: {show(before[key])}</pre> : null}
                  </td>
                </tr>
              ))}
            {removed.map((key) => (
              <tr key={`-${key}`} className="removed">
                <th>{key}</th>
                <td>(removed)</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
