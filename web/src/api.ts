// The engine's REST API as typed calls. Same origin only: the page is served by the engine itself.
import { authorization, savedToken, tokenOtherThan } from "./token";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export interface GraphDescription {
  graph_id: string;
  entry_point: string;
  version: number;
  source: string;
  nodes: { name: string; async: boolean; timeout: number | null; tool?: string }[];
  edges: { source: string; target: string }[];
  joins: { sources: string[]; target: string }[];
  conditional_edges: { source: string; router: string; branches: Record<string, string> }[];
  reducers: Record<string, string>;
  interrupt_before: string[];
  interrupt_after: string[];
  /** A JSON graph's definition (GET /graphs/{id} only): its nodes name their tools. */
  definition?: { nodes?: { name: string; tool?: string }[] };
}

export interface Pause {
  reason: string;
  node?: string | null;
  payload?: Json;
  error?: Json;
  [key: string]: Json | undefined;
}

export interface Run {
  run_id: string;
  graph_id: string;
  graph_version: number;
  status: string;
  current_node: string | null;
  pending: string[];
  pause: Pause | null;
  step_count: number;
  error: JsonObject | null;
  created_at: string;
  started_at: string | null;
  updated_at: string;
  finished_at: string | null;
  state?: JsonObject;
}

export interface HistoryEntry {
  step: number;
  branch: string;
  node: string;
  attempt: number;
  status: string;
  worker_id: string | null;
  duration_ms: number | null;
  delta: JsonObject;
  removed: string[];
  route: Json;
  error: JsonObject | null;
  state_after: JsonObject | null;
}

export interface RunEvent {
  run_id: string;
  seq: number;
  time: string;
  event: string;
  level: string;
  node: string | null;
  worker: string | null;
  fields: JsonObject;
}

export const STATUSES = ["queued", "running", "paused", "completed", "failed", "cancelled"] as const;
export const FINAL_EVENTS = new Set(["run_completed", "run_failed", "run_cancelled"]);
export const END = "__end__";

/** An answer other than 2xx: the API's `{"error": ...}` text, with the status. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  let token = savedToken();
  let response = await send(method, path, body);
  while (response.status === 401) {
    // The engine has a token and this was not it: wait for the right one (the page asks), then again.
    token = await tokenOtherThan(token);
    response = await send(method, path, body);
  }
  const text = await response.text();
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    throw new ApiError(response.status, `${method} ${path}: ${response.status}, not JSON`);
  }
  if (!response.ok) {
    const error = (data as { error?: unknown } | null)?.error;
    throw new ApiError(response.status, typeof error === "string" ? error : `${method} ${path}: ${response.status}`);
  }
  return data as T;
}

function send(method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(path, {
    method,
    headers: { ...(body === undefined ? {} : { "Content-Type": "application/json" }), ...authorization() },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

const q = encodeURIComponent;

export const api = {
  graphs: () => call<{ graphs: GraphDescription[] }>("GET", "/graphs").then((a) => a.graphs),
  graph: (id: string) => call<GraphDescription>("GET", `/graphs/${q(id)}`),
  run: (id: string) => call<Run>("GET", `/runs/${q(id)}`),
  /** Newest first, filtered by the server. */
  runs: (filter: RunFilter, limit: number) =>
    call<{ runs: Run[] }>("GET", `/runs?${query({ ...filter, limit: String(limit) })}`).then((a) => a.runs),
  /** Every run changed after `cursor`, oldest change first (unfiltered: a run leaving a filter must be seen). */
  runsChanged: (cursor: string, limit: number) =>
    call<{ runs: Run[]; next_cursor: string }>("GET", `/runs?${query({ since: cursor, limit: String(limit) })}`),
  history: (id: string, cursor: number, limit: number) =>
    call<{ steps: HistoryEntry[]; next_cursor: string | null }>(
      "GET",
      `/runs/${q(id)}/history?cursor=${cursor}&limit=${limit}`,
    ),
  startRun: (graphId: string, initialState: JsonObject) =>
    call<{ run_id: string }>("POST", "/graph/run", { graph_id: graphId, initial_state: initialState }),
  resume: (id: string, body: { state_update: JsonObject; answer?: Json; by?: string }) =>
    call<Run>("POST", `/runs/${q(id)}/resume`, body),
  cancel: (id: string) => call<Run>("POST", `/runs/${q(id)}/cancel`),
};

export interface RunFilter {
  status?: string;
  graph_id?: string;
}

function query(params: Record<string, string | undefined>): string {
  return Object.entries(params)
    .filter((entry): entry is [string, string] => entry[1] !== undefined)
    .map(([k, v]) => `${q(k)}=${q(v)}`)
    .join("&");
}

/** `/runs?since=` cursors are `updated_at|run_id`: the cursor just after the latest change among `runs`. */
export function cursorAfter(runs: Run[]): string {
  let best: Run | null = null;
  for (const r of runs) {
    if (
      best === null ||
      r.updated_at > best.updated_at ||
      (r.updated_at === best.updated_at && r.run_id > best.run_id)
    ) {
      best = r;
    }
  }
  return best === null ? "" : `${best.updated_at}|${best.run_id}`;
}
