/**
 * The adaptive warm pool (WARM_POOL=adaptive). Pure: no I/O; the scaler feeds it what it sees.
 *
 * Scale-from-zero can never beat the agent start-up time: a CI job waits at least as long as a
 * pod takes to become ready. The warm pool keeps some agents idle and ready AHEAD of demand,
 * sized from two measured quantities, never hand-configured:
 *
 * - the recent arrivals: `scheduled` events the ledger applied (first sight of a CI job; a
 *   duplicate or late delivery is a no-op there and is not counted), over the last `windowMs`;
 * - the agent start-up time: for each of our Jobs, from its creationTimestamp to the first tick
 *   that sees one of its pods ready (midpoint between the last tick that saw none and the first
 *   that saw one), median of the last samples.
 *
 * Sizing: once a warm agent is taken, its replacement is ready `T = start-up + reaction` later. A
 * pool of B agents serves a job at once when at most B jobs arrived in the T seconds up to and
 * including it. So for each recent arrival i, c_i = arrivals in (t_i - T, t_i]; the pool is the
 * `quantile` of the c_i (nearest rank): about that fraction of jobs find an agent ready if the
 * near future looks like the recent past. With no arrival in the window the pool is 0, so the
 * queue shrinks to MIN_AGENTS. The decision (core/decision.ts) adds the pool on top of pending
 * demand and caps the total in flight at MAX_AGENTS.
 */
import type { V1Job } from '@kubernetes/client-node';

export interface WarmPoolOptions {
  /** How far back arrivals count (default 10 minutes). */
  readonly windowMs?: number;
  /** Fraction of arrivals the pool aims to serve at once (default 0.75). */
  readonly quantile?: number;
  /** Arrival -> replacement agent Job created (webhook + tick), seconds (default 3). */
  readonly reactionSeconds?: number;
  /** Start-up samples kept per queue (default 20). */
  readonly samples?: number;
  /** Start-up assumed until the first measurement, seconds (default 30). */
  readonly startupPriorSeconds?: number;
}

export const WARM_POOL_DEFAULTS: Required<WarmPoolOptions> = {
  windowMs: 10 * 60_000,
  quantile: 0.75,
  reactionSeconds: 3,
  samples: 20,
  startupPriorSeconds: 30,
};

export interface WarmPoolSize {
  /** Idle agents to keep on top of pending demand. */
  readonly warm: number;
  /** Scheduled arrivals per minute over the window. */
  readonly arrivalsPerMinute: number;
  /** Measured median start-up (seconds), or the prior when nothing was measured yet. */
  readonly startupSeconds: number;
  /** Start-up samples behind the median (0: the prior was used). */
  readonly startupSamples: number;
  /** With a learned model (arrival-model.ts) that has history for the queue: today's observed-to-expected scale. */
  readonly learnedScale?: number;
}

/**
 * What the tracker needs of a learned arrival model (core/arrival-model.ts ArrivalModel): it sees
 * the arrivals, and gives the pool to keep now one start-up ahead (undefined: no history for the
 * queue, the recent arrivals size the pool).
 */
export interface LearnedArrivals {
  arrived(queue: string, at: number, now: number): void;
  target(queue: string, now: number, startupSeconds: number): number | undefined;
  scale(queue: string, now: number): number;
}

/**
 * The pool for a set of arrival times (ms, any order) at `now`: the `quantile` of the number of
 * arrivals in the `horizonSeconds` up to each arrival within the window.
 */
export function warmPoolFor(
  arrivals: readonly number[],
  now: number,
  horizonSeconds: number,
  options: Pick<WarmPoolOptions, 'windowMs' | 'quantile'> = {},
): number {
  const windowMs = options.windowMs ?? WARM_POOL_DEFAULTS.windowMs;
  const q = options.quantile ?? WARM_POOL_DEFAULTS.quantile;
  const recent = arrivals.filter((t) => t > now - windowMs && t <= now).sort((a, b) => a - b);
  if (recent.length === 0 || q <= 0) return 0;
  const horizonMs = horizonSeconds * 1000;
  const counts: number[] = [];
  let lo = 0;
  recent.forEach((t, i) => {
    while ((recent[lo] ?? t) <= t - horizonMs) lo++;
    counts.push(i - lo + 1);
  });
  counts.sort((a, b) => a - b);
  const rank = Math.min(counts.length, Math.max(1, Math.ceil(Math.min(1, q) * counts.length)));
  return counts[rank - 1] ?? 0;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  const mid = s[m] ?? 0;
  return s.length % 2 ? mid : ((s[m - 1] ?? mid) + mid) / 2;
}

/** A Job not ready after this many start-ups of its queue is stuck, not starting. */
const STARTING_FOR = 3;

/** What the tracker needs of one of our Jobs. */
export interface ObservedJob {
  readonly name: string;
  readonly queue: string;
  /** creationTimestamp, epoch ms. */
  readonly createdAt: number;
  /** At least one of its pods is or was ready (status.ready or status.succeeded > 0). */
  readonly ready: boolean;
}

/** Reads an agent Job for the tracker; undefined without a name or creation time. */
export function observedJob(job: V1Job, queue: string): ObservedJob | undefined {
  const name = job.metadata?.name;
  const created = job.metadata?.creationTimestamp;
  const createdAt = created === undefined ? Number.NaN : new Date(created).getTime();
  if (!name || !Number.isFinite(createdAt)) return undefined;
  const ready = (job.status?.ready ?? 0) > 0 || (job.status?.succeeded ?? 0) > 0;
  return { name, queue, createdAt, ready };
}

/**
 * The measurements behind the pool, kept across ticks (in memory: a fresh process starts with no
 * arrival, so the pool starts at 0 and grows as arrivals are seen).
 */
export class WarmPoolTracker {
  private readonly o: Required<WarmPoolOptions>;
  private readonly arrivals = new Map<string, number[]>();
  private readonly startups = new Map<string, number[]>();
  /** Jobs seen with no pod ready yet: when they were last seen so, and the Job itself. */
  private readonly notReady = new Map<string, { seen: number; job: ObservedJob }>();
  private readonly measured = new Set<string>();
  private lastObservation: number | undefined;

  constructor(
    options: WarmPoolOptions = {},
    /** The learned model: with history for a queue it sizes that queue's pool. */
    private readonly learned?: LearnedArrivals,
  ) {
    this.o = { ...WARM_POOL_DEFAULTS, ...options };
  }

  /** A `scheduled` event the ledger applied (at its occurredAt, epoch ms). */
  arrived(queue: string, at: number, now: number): void {
    const list = this.arrivals.get(queue) ?? [];
    const t = Number.isFinite(at) ? Math.min(at, now) : now;
    this.learned?.arrived(queue, t, now);
    list.push(t);
    this.arrivals.set(queue, list);
    this.prune(queue, now);
  }

  private prune(queue: string, now: number): void {
    const list = this.arrivals.get(queue);
    if (!list) return;
    const keep = list.filter((t) => t > now - this.o.windowMs);
    this.arrivals.set(queue, keep);
  }

  /** One look at our Jobs in the cluster (every tick). */
  observe(jobs: readonly ObservedJob[], now: number): void {
    const since = this.lastObservation;
    this.lastObservation = now;
    const present = new Set<string>();
    for (const j of jobs) {
      present.add(j.name);
      if (this.measured.has(j.name)) continue;
      if (!j.ready) {
        this.notReady.set(j.name, { seen: now, job: j });
        continue;
      }
      // Ready between the last look that saw it not ready (or the previous look, or its creation) and now.
      const before = Math.max(j.createdAt, this.notReady.get(j.name)?.seen ?? since ?? j.createdAt);
      const sample = ((before + now) / 2 - j.createdAt) / 1000;
      this.measured.add(j.name);
      this.notReady.delete(j.name);
      const list = this.startups.get(j.queue) ?? [];
      list.push(Math.max(0, sample));
      if (list.length > this.o.samples) list.shift();
      this.startups.set(j.queue, list);
    }
    for (const name of this.measured) if (!present.has(name)) this.measured.delete(name);
    for (const name of this.notReady.keys()) if (!present.has(name)) this.notReady.delete(name);
  }

  /**
   * Some Job was last seen with no pod ready, no older than STARTING_FOR start-ups of its queue:
   * its start-up is being measured, to within the time between two looks, so the scaler looks
   * again soon (loop.ts). One that takes longer is stuck (image pull, unschedulable, failing at
   * start: back-off's business), not worth a look every two seconds.
   */
  starting(now: number): boolean {
    for (const { job } of this.notReady.values())
      if (now - job.createdAt < STARTING_FOR * this.startupSeconds(job.queue) * 1000) return true;
    return false;
  }

  /** The queue's measured start-up plus the reaction: how far ahead a pool is sized (seconds). */
  horizonSeconds(queue: string): number {
    return this.startupSeconds(queue) + this.o.reactionSeconds;
  }

  private startupSeconds(queue: string): number {
    const samples = this.startups.get(queue) ?? [];
    return samples.length > 0 ? median(samples) : this.o.startupPriorSeconds;
  }

  /** The pool of a queue now, with its inputs (for the `scaling decision` log line). */
  size(queue: string, now: number): WarmPoolSize {
    this.prune(queue, now);
    const arrivals = this.arrivals.get(queue) ?? [];
    const samples = this.startups.get(queue) ?? [];
    const startupSeconds = this.startupSeconds(queue);
    const horizon = startupSeconds + this.o.reactionSeconds;
    const learned = this.learned?.target(queue, now, horizon);
    const warm = learned ?? warmPoolFor(arrivals, now, horizon, this.o);
    return {
      warm,
      arrivalsPerMinute: Math.round((arrivals.length / (this.o.windowMs / 60_000)) * 100) / 100,
      startupSeconds: Math.round(startupSeconds * 10) / 10,
      startupSamples: samples.length,
      ...(learned === undefined
        ? {}
        : { learnedScale: Math.round((this.learned?.scale(queue, now) ?? 1) * 100) / 100 }),
    };
  }
}
