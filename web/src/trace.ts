// What a run's event stream says about it, folded as the events arrive: the branches of every
// step with their latest attempt, which node runs now, how often each node ran, and the events
// themselves (bounded, so a long run cannot grow the page without limit).
import { END, FINAL_EVENTS, type RunEvent } from "./api";
import { START } from "./layout";

export type BranchStatus = "running" | "done" | "failed" | "retrying" | "lost" | "interrupted";

export interface BranchTrace {
  step: number;
  branch: string;
  node: string;
  attempt: number;
  status: BranchStatus;
  worker: string | null;
}

export interface NodeStatus {
  status: "running" | "done" | "failed";
  visits: number;
}

const BRANCH_EVENTS: Record<string, BranchStatus> = {
  node_started: "running",
  node_completed: "done",
  node_failed: "failed",
  node_retrying: "retrying",
  node_lost: "lost",
  node_interrupted: "interrupted",
};

/** Events kept for the log; the oldest are dropped past this (the trace itself keeps everything it needs). */
export const MAX_EVENTS = 20_000;

export class RunTrace {
  events: RunEvent[] = [];
  droppedEvents = 0;
  lastSeq = 0;
  finished = false;
  /** step -> branch -> its latest attempt, steps in the order they began. */
  readonly steps = new Map<number, Map<string, BranchTrace>>();
  readonly visits = new Map<string, number>();
  readonly running = new Map<string, BranchTrace>();
  /** Counts the events after which the run's record or history may have changed. */
  changes = 0;
  /**
   * Every (from, to) the run went along, as `from\u0000to`: START to the first node, each node of a step to
   * each of the next step's, the last step's to END.
   */
  readonly taken = new Set<string>();

  add(event: RunEvent): void {
    if (event.seq <= this.lastSeq) return; // a reconnect's ?since= makes this rare; never count twice
    this.lastSeq = event.seq;
    this.events.push(event);
    if (this.events.length > MAX_EVENTS) {
      const drop = this.events.length - MAX_EVENTS + 1000;
      this.events = this.events.slice(drop);
      this.droppedEvents += drop;
    }
    const status = BRANCH_EVENTS[event.event];
    if (status !== undefined && event.node !== null) this.branchEvent(event, event.node, status);
    if (event.event === "step_completed") this.stepCompleted(event);
    if (event.event === "node_started" && event.fields.step === 1 && event.node !== null) {
      this.taken.add(`${START}\u0000${event.node}`);
    }
    if (event.event === "step_completed" || event.event.startsWith("run_")) this.changes += 1;
    if (FINAL_EVENTS.has(event.event)) {
      this.finished = true;
      this.running.clear();
    }
  }

  private stepCompleted(event: RunEvent): void {
    const names = (value: unknown): string[] =>
      Array.isArray(value) ? value.filter((v): v is string => typeof v === "string").map(nodeOf) : [];
    const next = names(event.fields.next);
    for (const from of names(event.fields.branches)) {
      for (const to of next.length ? next : [END]) this.taken.add(`${from}\u0000${to}`);
    }
  }

  private branchEvent(event: RunEvent, node: string, status: BranchStatus): void {
    const step = typeof event.fields.step === "number" ? event.fields.step : 0;
    const branch = typeof event.fields.branch === "string" ? event.fields.branch : node;
    const attempt = typeof event.fields.attempt === "number" ? event.fields.attempt : 1;
    let branches = this.steps.get(step);
    if (branches === undefined) {
      branches = new Map();
      this.steps.set(step, branches);
    }
    const known = branches.get(branch);
    if (known !== undefined && known.attempt > attempt) return;
    branches.set(branch, { step, branch, node, attempt, status, worker: event.worker });
    const key = `${step}\u0000${branch}`;
    if (status === "running") this.running.set(key, branches.get(branch)!);
    else this.running.delete(key);
    if (status === "done") this.visits.set(node, (this.visits.get(node) ?? 0) + 1);
  }

  /** Each node's look on the diagram: running now, failed last, or done (with how many times). */
  nodeStatuses(): Map<string, NodeStatus> {
    const out = new Map<string, NodeStatus>();
    for (const [node, visits] of this.visits) out.set(node, { status: "done", visits });
    for (const branches of this.steps.values()) {
      for (const b of branches.values()) {
        if (b.status === "failed") out.set(b.node, { status: "failed", visits: this.visits.get(b.node) ?? 0 });
      }
    }
    for (const b of this.running.values()) out.set(b.node, { status: "running", visits: this.visits.get(b.node) ?? 0 });
    return out;
  }

  currentNodes(): string[] {
    return [...new Set([...this.running.values()].map((b) => b.node))];
  }
}

/** A branch's node: a `Send` branch is named `node[i]`. */
function nodeOf(branch: string): string {
  const bracket = branch.indexOf("[");
  return bracket > 0 ? branch.slice(0, bracket) : branch;
}
