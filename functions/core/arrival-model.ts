/**
 * The warm pool's learned arrival model. Pure: no I/O, the clock is passed in.
 *
 * A queue's arrivals (`scheduled` events the ledger applied) repeat with the hour of the week:
 * builds at the start of a working day, quiet nights and weekends. The model learns, per queue and
 * per 15-minute bucket of the week (672 buckets, weeks starting Monday 00:00 UTC), from past
 * buckets only:
 *
 * - `arrivals`: the expected arrivals in the bucket, a mean over past weeks that turns into an
 *   exponentially weighted one (weight max(alpha, 1/n) for the n-th sample);
 * - `within[k]`: the expected arrivals i of the bucket with c_i = k + 1, where c_i = arrivals
 *   within one start-up up to and including arrival i (as warm-pool.ts warmPoolFor counts them):
 *   with B agents kept ready, arrival i finds one when c_i <= B (the agents taken before it are
 *   not replaced yet). So the B-th agent of a bucket serves within[B - 1] more arrivals in it.
 *   Builds fanning out into many jobs at once show up here (c_i up to the build's size), where a
 *   Poisson quantile of the mean rate would keep one or two agents.
 *
 * Until a bucket of the week has `minWeeks` samples, the same quarter hour of the day (96 buckets,
 * learned from every day) stands in: a deployment with days of history, not yet weeks.
 *
 * Today's arrivals scale the learned curve: scale = (observed + prior) / (expected + prior) over
 * the UTC day so far, clamped to [1, 4]: a busier day than usual keeps more agents warm; a quieter
 * stretch keeps the usual pool (measured in the simulator: scaling down on a quiet start, before a
 * day's first build, cost the bursty trace its served share; a lull is mostly chance).
 *
 * The target, sized one start-up ahead (an agent made now is ready then), for the bucket at
 * now + start-up: every agent B whose arrivals served, within[B - 1] times the scale, reach the
 * queue's price. An agent kept for a bucket idles about the bucket whatever it serves, so the
 * price is the least arrivals per agent-bucket that still buys `share` of the queue's expected
 * arrivals, taking the agents that serve the most first (over the profile learned: every bucket
 * of the week, or of the day). That keeps agents where jobs come often and none in quiet hours:
 * the trade-off tools/simulate/bound.ts minimises, with the pool's gaps while a replacement
 * starts counted (c_i), which the bound ignores.
 * Without any history for a queue the model gives no target (undefined): the caller falls back
 * to the recent arrivals (warm-pool.ts warmPoolFor).
 */

export const BUCKET_MS = 15 * 60_000;
export const DAY_MS = 86_400_000;
export const WEEK_MS = 7 * DAY_MS;
export const BUCKETS_PER_DAY = DAY_MS / BUCKET_MS;
export const BUCKETS_PER_WEEK = WEEK_MS / BUCKET_MS;
/** 1970-01-01 was a Thursday: Monday 00:00 UTC is 3 days after the epoch modulo a week. */
const MONDAY_OFFSET_MS = 4 * DAY_MS;

/** The 15-minute bucket of the week (0 = Monday 00:00-00:15 UTC .. 671). */
export function weekBucketOf(epochMs: number): number {
  const inWeek = (((epochMs - MONDAY_OFFSET_MS) % WEEK_MS) + WEEK_MS) % WEEK_MS;
  return Math.floor(inWeek / BUCKET_MS);
}

/** The 15-minute bucket of the UTC day (0..95). */
export function dayBucketOf(epochMs: number): number {
  return Math.floor((((epochMs % DAY_MS) + DAY_MS) % DAY_MS) / BUCKET_MS);
}

/** What one bucket of the week (or of the day) learned. */
export interface BucketStats {
  /** Past buckets learned from. */
  readonly n: number;
  /** Expected arrivals in the bucket. */
  readonly arrivals: number;
  /** within[k]: expected arrivals of the bucket with k + 1 arrivals within a start-up up to them. */
  readonly within: readonly number[];
}

/** A queue's learned buckets: `week` by bucket of the week, `day` by bucket of the day. */
export interface QueueHistory {
  readonly week: ReadonlyMap<number, BucketStats>;
  readonly day: ReadonlyMap<number, BucketStats>;
}

export interface ArrivalModelOptions {
  /** Weight of the newest sample once there are more than 1/alpha (default 0.25). */
  readonly alpha?: number;
  /** Samples a bucket of the week needs before it is used instead of the bucket of the day (default 3). */
  readonly minWeeks?: number;
  /** Share of the queue's expected arrivals the pool aims to find an agent ready (default 0.56). */
  readonly share?: number;
  /** Pseudo-arrivals added to today's observed and expected counts (default 50). */
  readonly prior?: number;
  /**
   * Learn each bucket of the week once it is over from the arrivals seen (default true). The
   * simulator scores a day with it off, so a scored day learns nothing from itself.
   */
  readonly learnOnline?: boolean;
}

export const ARRIVAL_MODEL_DEFAULTS: Required<ArrivalModelOptions> = {
  alpha: 0.25,
  minWeeks: 3,
  share: 0.56,
  prior: 50,
  learnOnline: true,
};

function learnInto(map: Map<number, BucketStats>, bucket: number, within: readonly number[], alpha: number) {
  const s = map.get(bucket) ?? { n: 0, arrivals: 0, within: [] };
  const n = s.n + 1;
  const w = Math.max(alpha, 1 / n);
  const arrivals = within.reduce((a, b) => a + b, 0);
  const merged = Array.from({ length: Math.max(s.within.length, within.length) }, (_, k) => {
    const old = s.within[k] ?? 0;
    return old + w * ((within[k] ?? 0) - old);
  });
  while (merged.length > 0 && (merged.at(-1) ?? 0) < 1e-9) merged.pop();
  map.set(bucket, { n, arrivals: s.arrivals + w * (arrivals - s.arrivals), within: merged });
}

/** within[k] = arrivals i with c_i = k + 1 arrivals in the `horizonSeconds` up to and including i. */
export function withinStartup(arrivals: readonly number[], horizonSeconds: number): number[] {
  const sorted = [...arrivals].sort((a, b) => a - b);
  const within: number[] = [];
  let lo = 0;
  sorted.forEach((t, i) => {
    while ((sorted[lo] ?? t) <= t - horizonSeconds * 1000) lo++;
    const c = i - lo + 1;
    while (within.length < c) within.push(0);
    within[c - 1] = (within[c - 1] ?? 0) + 1;
  });
  return within;
}

/** Start of the bucket holding `epochMs`. */
export function bucketStart(epochMs: number): number {
  return Math.floor(epochMs / BUCKET_MS) * BUCKET_MS;
}

export class ArrivalModel {
  private readonly o: Required<ArrivalModelOptions>;
  private readonly queues = new Map<string, { week: Map<number, BucketStats>; day: Map<number, BucketStats> }>();
  /** The price per queue and profile, recomputed after learning. */
  private readonly prices = new Map<string, number>();
  /** Online learning: the open bucket's arrivals per queue. */
  private readonly open = new Map<string, { start: number; arrivals: number[] }>();
  /** Today's arrivals per queue: the UTC day they count for, since when they were watched, how many. */
  private readonly today = new Map<string, { day: number; since: number; observed: number }>();

  constructor(options: ArrivalModelOptions = {}) {
    this.o = { ...ARRIVAL_MODEL_DEFAULTS, ...options };
    if (!(this.o.alpha > 0 && this.o.alpha <= 1)) throw new Error('alpha must be in (0, 1]');
    if (!(this.o.share > 0 && this.o.share <= 1)) throw new Error('share must be in (0, 1]');
  }

  /** The queue's learned buckets (to persist them, or to look at them). */
  history(queue: string): QueueHistory | undefined {
    return this.queues.get(queue);
  }

  /** Loads a queue's persisted buckets (replacing what it had). */
  load(queue: string, history: QueueHistory): void {
    this.queues.set(queue, { week: new Map(history.week), day: new Map(history.day) });
    this.prices.clear();
  }

  /**
   * Learns one past bucket: the arrivals (epoch ms) of the 15 minutes from `start` (a bucket
   * start), with `horizonSeconds` the start-up a taken agent's replacement needs.
   */
  learnBucket(queue: string, start: number, arrivals: readonly number[], horizonSeconds: number): void {
    if (start !== bucketStart(start)) throw new Error(`learnBucket: ${start} is not the start of a bucket`);
    const inside = arrivals.filter((t) => t >= start && t < start + BUCKET_MS);
    const q = this.queues.get(queue) ?? { week: new Map(), day: new Map() };
    this.queues.set(queue, q);
    const within = withinStartup(inside, horizonSeconds);
    learnInto(q.week, weekBucketOf(start), within, this.o.alpha);
    learnInto(q.day, dayBucketOf(start), within, this.o.alpha);
    this.prices.clear();
  }

  /** Learns every bucket from `from` to `to` (epoch ms, whole buckets) from its arrivals. */
  learnPeriod(queue: string, from: number, to: number, arrivals: readonly number[], horizonSeconds: number): void {
    const sorted = [...arrivals].sort((a, b) => a - b);
    let i = 0;
    for (let start = bucketStart(from); start + BUCKET_MS <= to; start += BUCKET_MS) {
      while (i < sorted.length && (sorted[i] ?? 0) < start) i++;
      let j = i;
      while (j < sorted.length && (sorted[j] ?? 0) < start + BUCKET_MS) j++;
      this.learnBucket(queue, start, sorted.slice(i, j), horizonSeconds);
      i = j;
    }
  }

  /** Which profile a queue's bucket at `t` uses: the week's once it has minWeeks samples. */
  private stats(queue: string, t: number): { stats: BucketStats | undefined; weekly: boolean } | undefined {
    const q = this.queues.get(queue);
    if (!q || (q.week.size === 0 && q.day.size === 0)) return undefined;
    const week = q.week.get(weekBucketOf(t));
    if (week && week.n >= this.o.minWeeks) return { stats: week, weekly: true };
    return { stats: q.day.get(dayBucketOf(t)), weekly: false };
  }

  /** Expected arrivals in the 15 minutes of the bucket holding `t` (undefined: no history). */
  expected(queue: string, t: number): number | undefined {
    const s = this.stats(queue, t);
    return s === undefined ? undefined : (s.stats?.arrivals ?? 0);
  }

  /**
   * The queue's price: the least arrivals an agent kept for a bucket must serve. The agents that
   * serve the most are taken first until they serve `share` of the expected arrivals.
   */
  private price(queue: string, weekly: boolean): number {
    const key = `${weekly ? 'w' : 'd'}\n${queue}`;
    const known = this.prices.get(key);
    if (known !== undefined) return known;
    const q = this.queues.get(queue);
    const buckets = [...((weekly ? q?.week : q?.day)?.values() ?? [])].filter((s) => !weekly || s.n >= this.o.minWeeks);
    const total = buckets.reduce((a, s) => a + s.arrivals, 0);
    const gains = buckets.flatMap((s) => s.within).sort((a, b) => b - a);
    let served = 0;
    let price = Number.POSITIVE_INFINITY;
    for (const g of gains) {
      if (total <= 0 || g <= 0 || served >= this.o.share * total) break;
      served += g;
      price = g;
    }
    this.prices.set(key, price);
    return price;
  }

  /** Expected arrivals from `from` to `to` (epoch ms), each bucket pro rata. */
  expectedBetween(queue: string, from: number, to: number): number {
    let sum = 0;
    for (let start = bucketStart(from); start < to; start += BUCKET_MS) {
      const overlap = Math.min(to, start + BUCKET_MS) - Math.max(from, start);
      if (overlap > 0) sum += ((this.expected(queue, start) ?? 0) * overlap) / BUCKET_MS;
    }
    return sum;
  }

  /**
   * A `scheduled` arrival seen now (epoch ms `at`, no later than `now`): counts for today's scale
   * and for the open bucket, which is learned once it is over (`roll`).
   */
  arrived(queue: string, at: number, now: number): void {
    this.watch(queue, now).observed++;
    if (!this.o.learnOnline) return;
    this.roll(queue, now);
    const open = this.open.get(queue);
    if (open && at >= open.start) open.arrivals.push(at);
  }

  private watch(queue: string, now: number): { day: number; since: number; observed: number } {
    const day = Math.floor(now / DAY_MS);
    let t = this.today.get(queue);
    if (!t || t.day !== day) {
      t = { day, since: t ? day * DAY_MS : now, observed: 0 };
      this.today.set(queue, t);
    }
    return t;
  }

  /**
   * Online learning: learns the open bucket once `now` is past it (and the empty ones after it,
   * while the scaler kept watching), then opens the bucket of `now`.
   */
  roll(queue: string, now: number, horizonSeconds = 18): void {
    const current = bucketStart(now);
    const open = this.open.get(queue);
    if (open && open.start < current) {
      this.learnBucket(queue, open.start, open.arrivals, horizonSeconds);
      for (let s = open.start + BUCKET_MS; s < current; s += BUCKET_MS) this.learnBucket(queue, s, [], horizonSeconds);
    }
    if (!open || open.start < current) this.open.set(queue, { start: current, arrivals: [] });
  }

  /** Today's observed-to-expected arrivals so far (1 without history), clamped to [1, 4]. */
  scale(queue: string, now: number): number {
    const t = this.watch(queue, now);
    const expected = this.expectedBetween(queue, t.since, now);
    const s = (t.observed + this.o.prior) / (expected + this.o.prior);
    return Math.min(4, Math.max(1, s));
  }

  /**
   * The pool to keep now for the queue, `startupSeconds` ahead (undefined: no history). Only
   * counts the past: what `learn*` and `arrived` were given.
   */
  target(queue: string, now: number, startupSeconds: number): number | undefined {
    const t = now + startupSeconds * 1000;
    const s = this.stats(queue, t);
    if (s === undefined) return undefined;
    if (this.o.learnOnline) this.roll(queue, now, startupSeconds);
    const within = s.stats?.within ?? [];
    const price = this.price(queue, s.weekly);
    const scale = this.scale(queue, now);
    let pool = 0;
    while (pool < within.length && (within[pool] ?? 0) * scale >= price) pool++;
    return pool;
  }
}
