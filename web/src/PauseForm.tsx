// A paused run: its question (or error), and a form to resume it with an edited state and an answer.
import { useState } from "react";
import { api, type Json, type JsonObject, type Run } from "./api";
import { same, show } from "./text";

export function PauseForm({ run, onResumed }: { run: Run; onResumed: () => void }) {
  const pause = run.pause;
  const [stateText, setStateText] = useState(() => JSON.stringify(run.state ?? {}, null, 2));
  const [answer, setAnswer] = useState("");
  const [by, setBy] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  const submit = async () => {
    setError("");
    let edited: unknown;
    try {
      edited = JSON.parse(stateText);
    } catch (e) {
      setError(`The state is not valid JSON: ${(e as Error).message}`);
      return;
    }
    if (edited === null || typeof edited !== "object" || Array.isArray(edited)) {
      setError("The state must be a JSON object.");
      return;
    }
    const current = run.state ?? {};
    const update: JsonObject = {};
    for (const [key, value] of Object.entries(edited as JsonObject)) {
      if (!same(value, current[key])) update[key] = value;
    }
    const body: { state_update: JsonObject; answer?: Json; by?: string } = { state_update: update };
    if (answer.trim() !== "") body.answer = parseAnswer(answer);
    if (by.trim() !== "") body.by = by.trim();
    setBusy(true);
    try {
      await api.resume(run.run_id, body);
      onResumed();
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="pause" data-testid="pause">
      <h3>Paused: waiting for a person</h3>
      <p>
        {pause?.reason ?? "paused"}
        {pause?.node ? ` at ${pause.node}` : ""}
      </p>
      {pause?.payload !== undefined ? <pre className="question">{show(pause.payload)}</pre> : null}
      {pause?.error !== undefined && pause.error !== null ? <pre className="error">{show(pause.error)}</pre> : null}
      <label>
        state (edit the keys to change; only changed keys are sent)
        <textarea name="state" rows={10} value={stateText} onChange={(e) => setStateText(e.target.value)} />
      </label>
      <label>
        answer (JSON, or plain text)
        <input name="answer" value={answer} onChange={(e) => setAnswer(e.target.value)} />
      </label>
      <label>
        by
        <input name="by" value={by} placeholder="your name" onChange={(e) => setBy(e.target.value)} />
      </label>
      <button type="button" disabled={busy} onClick={() => void submit()}>
        Resume
      </button>
      {error ? <p className="error">{error}</p> : null}
    </section>
  );
}

function parseAnswer(text: string): Json {
  try {
    return JSON.parse(text) as Json;
  } catch {
    return text;
  }
}
