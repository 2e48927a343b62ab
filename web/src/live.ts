// Hooks that keep one run's view current: its event stream (WebSocket), its record and its history.
import { useEffect, useRef, useState } from "react";
import { api, type HistoryEntry, type Run, type RunEvent } from "./api";
import { tokenQuery } from "./token";
import { RunTrace } from "./trace";

export type Connection = "connecting" | "live" | "reconnecting" | "ended";

/**
 * The run's events from /ws/logs/{run_id}, folded into a trace; re-renders at most every 100 ms.
 * Connects once `known` (the run's record was read): an unknown run would only fail the upgrade again and again.
 */
export function useRunTrace(runId: string, known: boolean): { trace: RunTrace; tick: number; connection: Connection } {
  const [trace, setTrace] = useState(() => new RunTrace());
  const [tick, setTick] = useState(0);
  const [connection, setConnection] = useState<Connection>("connecting");
  useEffect(() => {
    const current = new RunTrace();
    setTrace(current);
    setConnection("connecting");
    if (!known) return;
    let socket: WebSocket | null = null;
    let left = false;
    let flush = 0;
    let retry = 0;
    const render = () => {
      flush = 0;
      setTick((t) => t + 1);
    };
    const connect = () => {
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      const path = `/ws/logs/${encodeURIComponent(runId)}?since=${current.lastSeq}${tokenQuery()}`;
      const url = `${scheme}://${location.host}${path}`;
      const ws = new WebSocket(url);
      socket = ws;
      ws.onopen = () => setConnection("live");
      ws.onmessage = (message) => {
        current.add(JSON.parse(String(message.data)) as RunEvent);
        if (!flush) flush = window.setTimeout(render, 100);
      };
      ws.onclose = () => {
        if (left) return;
        if (current.finished) {
          setConnection("ended");
          render();
        } else {
          setConnection("reconnecting");
          retry = window.setTimeout(connect, 1000);
        }
      };
    };
    connect();
    return () => {
      left = true;
      window.clearTimeout(flush);
      window.clearTimeout(retry);
      if (socket?.readyState === WebSocket.CONNECTING) {
        const pending = socket;
        pending.onopen = () => pending.close(); // closing before the handshake is a console error
      } else {
        socket?.close();
      }
    };
  }, [runId, known]);
  return { trace, tick, connection };
}

/** The run's record, fetched again whenever `changes` moves (a step ended, the run paused, resumed, ended). */
export function useRun(runId: string, changes: number): { run: Run | null; error: string; reload: () => void } {
  const [run, setRun] = useState<Run | null>(null);
  const [error, setError] = useState("");
  const [asked, setAsked] = useState(0);
  useEffect(() => setRun(null), [runId]);
  useEffect(() => {
    let stale = false;
    const timer = window.setTimeout(() => {
      api.run(runId).then(
        (r) => !stale && (setRun(r), setError("")),
        (e: Error) => !stale && setError(e.message),
      );
    }, 50);
    return () => {
      stale = true;
      window.clearTimeout(timer);
    };
  }, [runId, changes, asked]);
  return { run, error, reload: () => setAsked((a) => a + 1) };
}

const HISTORY_PAGE = 1000;

/**
 * Every step record with the state after it (GET /runs/{id}/history). Records of a step before the
 * last one never change, so each refresh asks only from the last step on; one request at a time.
 */
export function useHistory(runId: string, changes: number): HistoryEntry[] {
  const [entries, setEntries] = useState<HistoryEntry[]>([]);
  const state = useRef({ runId, entries: [] as HistoryEntry[], busy: false, again: false });
  useEffect(() => {
    state.current = { runId, entries: [], busy: false, again: false };
    setEntries([]);
  }, [runId]);
  useEffect(() => {
    const s = state.current;
    const refresh = async () => {
      if (s.busy) {
        s.again = true;
        return;
      }
      s.busy = true;
      try {
        do {
          s.again = false;
          const last = s.entries.length ? s.entries[s.entries.length - 1].step : -1;
          let cursor = s.entries.findIndex((e) => e.step === last);
          if (cursor < 0) cursor = s.entries.length;
          const fetched: HistoryEntry[] = [];
          for (;;) {
            const page = await api.history(s.runId, cursor + fetched.length, HISTORY_PAGE);
            fetched.push(...page.steps);
            if (page.next_cursor === null) break;
          }
          if (state.current !== s) return;
          s.entries = s.entries.slice(0, cursor).concat(fetched);
          setEntries(s.entries);
        } while (s.again);
      } catch {
        // the next change asks again
      } finally {
        s.busy = false;
      }
    };
    void refresh();
  }, [runId, changes]);
  return entries;
}
