/**
 * The in-flight limiter's bookkeeping, as pure functions: reconciling the limiter's tokens with
 * what the cluster shows, and planning a reservation. The DynamoDB limiter store enforces the
 * limit atomically (a conditional write); this module decides what to ask of it. No I/O.
 *
 * Kubernetes is the truth for what is in flight. Each dispatch (one reservation, one Job) holds
 * tokens; a queue's limiter counter must equal the sum of its dispatches' tokens plus the live
 * agents of any Job of ours that has no dispatch record (an orphan, e.g. created by hand or left
 * by a lost record: counted, never ignored, so MAX_AGENTS holds).
 *
 * No token of a dispatch is given back while a create of that dispatch can still land: every
 * create is fenced by a conditional write on the dispatch (attempts + 1, `createsUntil`) before it
 * is issued, and only while the dispatch is an intent; an answered create is counted as settled.
 * Tokens are shrunk or returned only when every fenced create is settled or `createsUntil` has
 * passed before the cluster was listed, with a write conditional on the attempts read. Until then
 * a dispatch holds its full count, whether its Job was deleted, finished or shrank: a late create
 * would bring the Job back whole.
 */
import type { AgentBatch } from './decision.js';
import type { DispatchRecord, LimiterRecord } from './stores.js';

/** What the scaler needs to know of one of its Jobs in the cluster. */
export interface ClusterJob {
  readonly jobName: string;
  readonly queue: string;
  readonly dispatchId: string;
  /** Agents of this Job provisioned and not finished (pods Pending count too); 0 once finished. */
  readonly live: number;
}

export type DispatchAction =
  /** Nothing to write: the Job exists with exactly these tokens, or an intent waits out its lease. */
  | { readonly kind: 'keep'; readonly dispatch: DispatchRecord; readonly tokens: number }
  /** The Job exists: record it as submitted and/or shrink tokens to its live agents. */
  | {
      readonly kind: 'update';
      readonly dispatch: DispatchRecord;
      readonly tokens: number;
      readonly markSubmitted: boolean;
    }
  /** The reservation has no Job yet and its lease is still valid: create it (again). */
  | { readonly kind: 'create'; readonly dispatch: DispatchRecord; readonly tokens: number }
  /** The Job finished, failed or vanished, or the lease expired without a Job: return the tokens. */
  | {
      readonly kind: 'release';
      readonly dispatch: DispatchRecord;
      readonly tokens: 0;
      readonly why: 'job-finished' | 'job-gone' | 'lease-expired';
    };

export interface Correction {
  readonly queue: string;
  readonly expectedVersion: number;
  readonly from: number;
  readonly to: number;
}

export interface ReconcilePlan {
  readonly actions: readonly DispatchAction[];
  /** Limiter counters that differ from the truth, and the value they should have. */
  readonly corrections: readonly Correction[];
  /** Agents in flight per queue once the plan is carried out (the decision's input). */
  readonly inFlight: Readonly<Record<string, number>>;
  /** Limiter version per queue as read (0 when the queue has no limiter item yet). */
  readonly versions: Readonly<Record<string, number>>;
  /** Live agents per queue in Jobs of ours without a dispatch record. */
  readonly orphans: Readonly<Record<string, number>>;
  /**
   * Agents per queue that exist or are on their way (live agents of our Jobs, plus intents not
   * yet a Job); at most inFlight: tokens of a Job that a late create could bring back are held
   * but are no agents.
   */
  readonly supply: Readonly<Record<string, number>>;
  /** The supply per queue by when it was made (a dispatch's createdAt; orphans: 0). */
  readonly batches: Readonly<Record<string, readonly AgentBatch[]>>;
}

export interface ReconcileInput {
  readonly limiters: readonly LimiterRecord[];
  readonly dispatches: readonly DispatchRecord[];
  /**
   * Our Jobs as listed AFTER the limiter and dispatches were read: a dispatch marked submitted
   * before that read had its Job created before the list, so a submitted dispatch without a Job
   * really has lost it.
   */
  readonly jobs: readonly ClusterJob[];
  /**
   * Epoch milliseconds, taken BEFORE the cluster was listed: a create that can land only until
   * a moment before this is in the list.
   */
  readonly now: number;
  /**
   * An intent is re-created only until this long before its lease ends, and released only once
   * the lease has ended: a create still under way (slow API server, client timeout on a create
   * the server commits later) can never land after its tokens were released and re-reserved.
   * See intentCreateGraceMs().
   */
  readonly createGraceMs?: number;
  /** Queues to report even when nothing is known of them yet. */
  readonly queues?: readonly string[];
}

/**
 * The gap between the last moment an intent may be (re)created and the moment it is released:
 * longer than a create can take, including the API server's own request timeout (60 s) for a
 * create the client gave up on; at most half the lease.
 */
export function intentCreateGraceMs(leaseMs: number): number {
  return Math.min(60_000, Math.floor(leaseMs / 2));
}

/** Whether an intent may still be (re)created at `now`. */
export function mayCreate(d: DispatchRecord, now: number, graceMs: number): boolean {
  return now < d.leaseUntil - graceMs;
}

/** The longest a fenced create may wait between its fence and being issued. */
export const CREATE_ISSUE_SLACK_MS = 5_000;

/**
 * `createsUntil` of a create fenced at `now`: it is issued within CREATE_ISSUE_SLACK_MS or not
 * at all, and lands within graceMs of being issued (see intentCreateGraceMs).
 */
export function createsUntilFor(d: DispatchRecord, now: number, graceMs: number): number {
  return Math.max(d.createsUntil ?? d.leaseUntil, now + CREATE_ISSUE_SLACK_MS + graceMs);
}

/** Whether a fenced create issued no later than `fencedAt` + slack may still be issued at `now`. */
export function mayIssue(fencedAt: number, now: number): boolean {
  return now <= fencedAt + CREATE_ISSUE_SLACK_MS;
}

/**
 * Whether a create of this dispatch may still land after `at`: some fenced create is unanswered
 * and its deadline has not passed. (A dispatch written before fencing: until its lease ends.)
 */
export function createsMayLand(d: DispatchRecord, at: number): boolean {
  const attempts = d.attempts ?? 1;
  const settled = d.settled ?? 0;
  return settled < attempts && at < (d.createsUntil ?? d.leaseUntil);
}

function dispatchAction(d: DispatchRecord, job: ClusterJob | undefined, now: number, graceMs: number): DispatchAction {
  if (createsMayLand(d, now)) {
    // A create of this dispatch can still land: it would bring the Job back whole, so the
    // dispatch keeps its full count, whatever the cluster shows now.
    const tokens = d.count;
    if (job) {
      const markSubmitted = d.status !== 'submitted';
      if (!markSubmitted && tokens === d.tokens) return { kind: 'keep', dispatch: d, tokens };
      return { kind: 'update', dispatch: d, tokens, markSubmitted };
    }
    if (d.status === 'intent' && mayCreate(d, now, graceMs)) return { kind: 'create', dispatch: d, tokens };
    if (tokens === d.tokens) return { kind: 'keep', dispatch: d, tokens };
    return { kind: 'update', dispatch: d, tokens, markSubmitted: false };
  }
  if (job) {
    if (job.live <= 0) return { kind: 'release', dispatch: d, tokens: 0, why: 'job-finished' };
    const tokens = Math.min(job.live, d.count);
    const markSubmitted = d.status !== 'submitted';
    if (!markSubmitted && tokens === d.tokens) return { kind: 'keep', dispatch: d, tokens };
    return { kind: 'update', dispatch: d, tokens, markSubmitted };
  }
  if (d.status === 'submitted') return { kind: 'release', dispatch: d, tokens: 0, why: 'job-gone' };
  if (now >= d.leaseUntil) return { kind: 'release', dispatch: d, tokens: 0, why: 'lease-expired' };
  // In the grace period the tokens stay held, and nothing is created, until the lease ends.
  if (!mayCreate(d, now, graceMs)) return { kind: 'keep', dispatch: d, tokens: d.tokens };
  return { kind: 'create', dispatch: d, tokens: d.tokens };
}

export function planReconcile(input: ReconcileInput): ReconcilePlan {
  const jobsByName = new Map(input.jobs.map((j) => [j.jobName, j]));
  const recorded = new Set(input.dispatches.map((d) => d.jobName));
  const actions = input.dispatches.map((d) =>
    dispatchAction(d, jobsByName.get(d.jobName), input.now, input.createGraceMs ?? 0),
  );

  const inFlight: Record<string, number> = {};
  const versions: Record<string, number> = {};
  const orphans: Record<string, number> = {};
  const supply: Record<string, number> = {};
  const batches: Record<string, AgentBatch[]> = {};
  const add = (table: Record<string, number>, queue: string, n: number) => {
    table[queue] = (table[queue] ?? 0) + n;
  };
  const addAgents = (queue: string, createdAt: number, count: number) => {
    add(supply, queue, count);
    if (count <= 0) return;
    const list = batches[queue] ?? [];
    list.push({ createdAt, count });
    batches[queue] = list;
  };
  for (const q of input.queues ?? []) inFlight[q] = 0;
  for (const l of input.limiters) {
    inFlight[l.queue] ??= 0;
    versions[l.queue] = l.version;
  }
  for (const a of actions) {
    add(inFlight, a.dispatch.queue, a.tokens);
    const job = jobsByName.get(a.dispatch.jobName);
    // A Job's live agents; an intent without a Job: the agents on their way.
    const agents = job ? Math.min(Math.max(0, job.live), a.tokens) : a.dispatch.status === 'intent' ? a.tokens : 0;
    addAgents(a.dispatch.queue, a.dispatch.createdAt, agents);
  }
  for (const j of input.jobs) {
    if (!recorded.has(j.jobName) && j.live > 0) {
      add(orphans, j.queue, j.live);
      add(inFlight, j.queue, j.live);
      addAgents(j.queue, 0, j.live);
    }
  }
  for (const q of Object.keys(inFlight)) {
    supply[q] ??= 0;
    batches[q] ??= [];
  }

  const byQueue = new Map(input.limiters.map((l) => [l.queue, l]));
  const corrections: Correction[] = [];
  for (const [queue, to] of Object.entries(inFlight)) {
    const limiter = byQueue.get(queue);
    const from = limiter?.inFlight ?? 0;
    versions[queue] ??= 0;
    if (from !== to) corrections.push({ queue, expectedVersion: limiter?.version ?? 0, from, to });
  }
  return { actions, corrections, inFlight, versions, orphans, supply, batches };
}
