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
 * Arrivals of the bucket already seen need no agent again (issue 19 point 2): once the bucket has
 * had what was learned for it (its expected arrivals, or the one build of a bucket that learned at
 * most one), they are taken off its curve and the rest is set against the time left of the bucket
 * (stillToCome). A run of 8 jobs a day at 10:00 keeps 8 agents before it and none once it came.
 * Without any history for a queue the model gives no target (undefined): the caller falls back
 * to the recent arrivals (warm-pool.ts warmPoolFor).
 *
 * The share is aimed at p50 wait <= the reaction directly: half of a day's arrivals must find an
 * agent ready (servedGoal 0.5). A day's share served scatters around the share aimed at, widely
 * where builds fan out (one bursty hour is a dozen builds: 0.40 to 0.82 of a day's arrivals at
 * share 0.56) and narrowly where arrivals are spread (diurnal: within a few points). So each past
 * day is scored out of sample before it is learned: for each candidate share (0.40 .. 0.90),
 * the arrivals the pool sized from what was learned BEFORE the day would have had ready. The share
 * is the least candidate that reached servedGoal on `confidence` (0.8) of the scored days: low
 * where days are alike (less idle), higher where they scatter. Until 5 days are scored (a day is
 * scored once every bucket of the day has 3 samples) the prior `share` (0.56) is used.
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

/** The shares of expected arrivals a pool may aim at: 0.40, 0.42, .. 0.90. */
export const CANDIDATE_SHARES: readonly number[] = Array.from({ length: 26 }, (_, i) => Math.round(40 + 2 * i) / 100);

/** One UTC day being scored (see `days`): the prices it started with, arrivals served per candidate, arrivals. */
export interface DayScore {
  readonly day: number;
  /** Per CANDIDATE_SHARES, the price of the week's (w) and the day's (d) profile at the day's start. */
  readonly prices: { readonly w: readonly number[]; readonly d: readonly number[] };
  readonly served: readonly number[];
  readonly total: number;
}

/** A queue's learned buckets: `week` by bucket of the week, `day` by bucket of the day. */
export interface QueueHistory {
  readonly week: ReadonlyMap<number, BucketStats>;
  readonly day: ReadonlyMap<number, BucketStats>;
  /**
   * Past UTC days scored out of sample: per CANDIDATE_SHARES, the fraction of the day's arrivals
   * the pool aiming at that share would have had ready (the pool sized from what was learned
   * before the day, against the day's arrivals), newest last, at most SCORED_DAYS.
   */
  readonly days?: readonly (readonly number[])[];
  /** The day being scored now (undefined: none, or the model knew too little when it began). */
  readonly scoring?: DayScore | undefined;
}

/** Days of scores kept (four weeks). */
export const SCORED_DAYS = 28;
/** A day is scored only when every bucket of the day had this many samples before it. */
const SCORE_AFTER_DAYS = 3;

export interface ArrivalModelOptions {
  /** Weight of the newest sample once there are more than 1/alpha (default 0.25). */
  readonly alpha?: number;
  /** Samples a bucket of the week needs before it is used instead of the bucket of the day (default 3). */
  readonly minWeeks?: number;
  /**
   * Whole days learned (every bucket of the day sampled at least this often) before the model
   * sizes a queue's pool (default 1); until then the recent arrivals do (warm-pool.ts). A
   * deployment that has learned an hour knows nothing of the rest of the day yet.
   */
  readonly minDays?: number;
  /**
   * Share of the queue's expected arrivals the pool aims to find an agent ready (default 0.56),
   * until `minScoredDays` days are scored; then the least CANDIDATE_SHARES that had at least
   * `servedGoal` of the arrivals ready on at least `confidence` of the scored days.
   */
  readonly share?: number;
  /** The fraction of a day's arrivals that must find an agent ready: p50 wait within the reaction (default 0.5). */
  readonly servedGoal?: number;
  /** The fraction of scored days that must reach servedGoal (default 0.8; 0: the fixed `share` always). */
  readonly confidence?: number;
  /** Scored days needed before the share is chosen from them (default 5). */
  readonly minScoredDays?: number;
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
  minDays: 1,
  share: 0.56,
  servedGoal: 0.5,
  confidence: 0.8,
  minScoredDays: 5,
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
  private readonly queues = new Map<
    string,
    { week: Map<number, BucketStats>; day: Map<number, BucketStats>; days: number[][]; scoring?: DayScore | undefined }
  >();
  /** The price per queue and profile, recomputed after learning. */
  private readonly prices = new Map<string, number>();
  /** Online learning: the open bucket's arrivals per queue. */
  private readonly open = new Map<string, { start: number; arrivals: number[] }>();
  /** Today's arrivals per queue: the UTC day they count for, since when they were watched, how many. */
  private readonly today = new Map<string, { day: number; since: number; observed: number }>();
  /** Per queue, the arrivals (epoch ms) seen in the bucket starting at `start` (the bucket of the last one seen). */
  private readonly seen = new Map<string, { start: number; arrivals: number[] }>();

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
    this.queues.set(queue, {
      week: new Map(history.week),
      day: new Map(history.day),
      days: (history.days ?? []).map((d) => [...d]),
      ...(history.scoring ? { scoring: history.scoring } : {}),
    });
    this.prices.clear();
  }

  /**
   * Learns one past bucket: the arrivals (epoch ms) of the 15 minutes from `start` (a bucket
   * start), with `horizonSeconds` the start-up a taken agent's replacement needs.
   */
  learnBucket(queue: string, start: number, arrivals: readonly number[], horizonSeconds: number): void {
    if (start !== bucketStart(start)) throw new Error(`learnBucket: ${start} is not the start of a bucket`);
    const inside = arrivals.filter((t) => t >= start && t < start + BUCKET_MS);
    const q = this.queues.get(queue) ?? { week: new Map(), day: new Map(), days: [] };
    this.queues.set(queue, q);
    const within = withinStartup(inside, horizonSeconds);
    this.score(queue, q, start, within);
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

  /**
   * Scores the bucket from `start` (its arrivals' within-histogram) before it is learned: per
   * candidate share, the arrivals the pool sized from what was learned so far would have had
   * ready (c_i <= pool, as target() sizes it, today's scale left out). A new UTC day closes the
   * day scored before and starts one when the model knows every bucket of the day well enough.
   */
  private score(
    queue: string,
    q: { days: number[][]; scoring?: DayScore | undefined; day: Map<number, BucketStats> },
    start: number,
    within: readonly number[],
  ): void {
    const day = Math.floor(start / DAY_MS);
    if (q.scoring?.day !== day) {
      const done = q.scoring;
      if (done && done.total > 0) {
        q.days.push(done.served.map((x) => x / done.total));
        if (q.days.length > SCORED_DAYS) q.days.shift();
      }
      q.scoring = undefined;
      const ready = q.day.size === BUCKETS_PER_DAY && [...q.day.values()].every((s) => s.n >= SCORE_AFTER_DAYS);
      if (ready)
        q.scoring = {
          day,
          prices: { w: this.candidatePrices(queue, true), d: this.candidatePrices(queue, false) },
          served: CANDIDATE_SHARES.map(() => 0),
          total: 0,
        };
    }
    const scoring = q.scoring;
    if (!scoring || scoring.day !== day) return;
    const s = this.stats(queue, start);
    const mean = s?.stats?.within ?? [];
    const prices = s?.weekly ? scoring.prices.w : scoring.prices.d;
    const served = scoring.served.map((x, j) => {
      const price = prices[j] ?? Number.POSITIVE_INFINITY;
      let pool = 0;
      while (pool < mean.length && (mean[pool] ?? 0) >= price) pool++;
      return x + within.slice(0, pool).reduce((a, b) => a + b, 0);
    });
    q.scoring = { ...scoring, served, total: scoring.total + within.reduce((a, b) => a + b, 0) };
  }

  /** The share the pool aims at now (see ArrivalModelOptions.share). */
  share(queue: string): number {
    const days = this.queues.get(queue)?.days ?? [];
    if (this.o.confidence <= 0 || days.length < this.o.minScoredDays) return this.o.share;
    const j = CANDIDATE_SHARES.findIndex(
      (_, j) => days.filter((d) => (d[j] ?? 0) >= this.o.servedGoal).length >= this.o.confidence * days.length,
    );
    return CANDIDATE_SHARES[j < 0 ? CANDIDATE_SHARES.length - 1 : j] ?? this.o.share;
  }

  /** The price for each of CANDIDATE_SHARES of the week's or the day's profile (one sort). */
  private candidatePrices(queue: string, weekly: boolean): number[] {
    const { total, gains } = this.gains(queue, weekly);
    const out: number[] = [];
    let served = 0;
    let price = Number.POSITIVE_INFINITY;
    let i = 0;
    for (const share of CANDIDATE_SHARES) {
      while (i < gains.length && total > 0 && (gains[i] ?? 0) > 0 && served < share * total) {
        served += gains[i] ?? 0;
        price = gains[i] ?? price;
        i++;
      }
      out.push(price);
    }
    return out;
  }

  private gains(queue: string, weekly: boolean): { total: number; gains: number[] } {
    const q = this.queues.get(queue);
    const buckets = [...((weekly ? q?.week : q?.day)?.values() ?? [])].filter((s) => !weekly || s.n >= this.o.minWeeks);
    const total = buckets.reduce((a, s) => a + s.arrivals, 0);
    return { total, gains: buckets.flatMap((s) => s.within).sort((a, b) => b - a) };
  }

  /** Which profile a queue's bucket at `t` uses: the week's once it has minWeeks samples. */
  private stats(queue: string, t: number): { stats: BucketStats | undefined; weekly: boolean } | undefined {
    const q = this.queues.get(queue);
    if (!q || (q.week.size === 0 && q.day.size === 0)) return undefined;
    const week = q.week.get(weekBucketOf(t));
    if (week && week.n >= this.o.minWeeks) return { stats: week, weekly: true };
    return { stats: q.day.get(dayBucketOf(t)), weekly: false };
  }

  /** Every bucket of the day learned at least minDays times (else target() gives no pool). */
  private daysLearned(queue: string): boolean {
    const day = this.queues.get(queue)?.day;
    if (!day || day.size < BUCKETS_PER_DAY) return false;
    for (const s of day.values()) if (s.n < this.o.minDays) return false;
    return true;
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
    const { total, gains } = this.gains(queue, weekly);
    const share = this.share(queue);
    let served = 0;
    let price = Number.POSITIVE_INFINITY;
    for (const g of gains) {
      if (total <= 0 || g <= 0 || served >= share * total) break;
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
    const start = bucketStart(now);
    let seen = this.seen.get(queue);
    if (seen?.start !== start) {
      seen = { start, arrivals: [] };
      this.seen.set(queue, seen);
    }
    if (at >= start && seen.arrivals.length < MAX_OPEN_ARRIVALS) seen.arrivals.push(at);
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
    if (s === undefined || !this.daysLearned(queue)) return undefined;
    if (this.o.learnOnline) this.roll(queue, now, startupSeconds);
    const price = this.price(queue, s.weekly);
    const scale = this.scale(queue, now);
    const served = this.stillToCome(queue, now, t, startupSeconds, s.stats, scale);
    return served.filter((x) => x >= price).length;
  }

  /**
   * The arrivals each agent of the pool still serves in the bucket holding `t` (issue 19 point 2:
   * the arrivals already seen need no agent again): `learned` is the bucket's statistics, its
   * curve (within) times today's `scale` the pool as learned. The curve stands until the bucket (the part of it watched) has had what was learned
   * for it: at least its expected arrivals, or, a bucket that learned at most one build
   * (within[0] <= 1: one arrival with no other a start-up before it), that build. Before that
   * more may well come: measured in the simulator, discounting the builds a bucket had seen
   * before it reached its mean cost the bursty trace its served share (a build's fan-out is no
   * schedule). Once it has, the arrivals seen are taken off the curve, each where learnBucket
   * counts it (c_i), and what is left per agent k, within[k] * watched - seenWithin[k], is set
   * against the time left of the bucket, as the price is per agent-bucket: never more than
   * within[k] (no catching up is assumed), never below 0. A run of 8 jobs every day at 10:00:
   * once its first job came, the pool keeps no agent for the 8 that already came.
   */
  private stillToCome(
    queue: string,
    now: number,
    t: number,
    horizonSeconds: number,
    learned: BucketStats | undefined,
    scale: number,
  ): number[] {
    const within = (learned?.within ?? []).map((w) => w * scale);
    const start = bucketStart(t);
    const from = Math.max(start, this.watch(queue, now).since);
    if (now <= from) return within;
    const arrivals = (this.seen.get(queue)?.arrivals ?? []).filter((x) => x >= from && x <= now);
    const watched = (start + BUCKET_MS - from) / BUCKET_MS;
    const seen = withinStartup(arrivals, horizonSeconds);
    const builds = learned?.within[0] ?? 0;
    const hadIt =
      arrivals.length >= (learned?.arrivals ?? 0) * watched || (builds <= 1 && (seen[0] ?? 0) >= builds * watched);
    if (!hadIt) return within;
    const left = (start + BUCKET_MS - now) / BUCKET_MS;
    return within.map((w, k) => Math.max(0, Math.min(w, (w * watched - (seen[k] ?? 0)) / left)));
  }
}

/**
 * A queue's learning as persisted (adapters/dynamodb/arrival-history-store.ts): the buckets
 * learned, and the bucket still open with the arrivals (epoch ms) seen in it so far.
 */
export interface StoredArrivals {
  readonly history: QueueHistory;
  readonly open?: { readonly start: number; readonly arrivals: readonly number[] };
}

/** Arrivals kept in the stored open buckets (beyond: the oldest are dropped, see mergeArrivals). */
export const MAX_OPEN_ARRIVALS = 20_000;

/** A bucket is learned this long after it ended, so events applied late still count in it (default). */
export const LEARN_GRACE_MS = 5 * 60_000;

/**
 * The stored learning after adding `mine`, arrivals this scaler saw and has not saved yet, at
 * `now`. Pure, and a function of what is stored, so a writer that lost a conditional write reads
 * again and re-applies it (nothing is counted twice: `mine` reach the store only with a write
 * that succeeds):
 * - `open` holds the arrivals from its start on (the bucket not learned yet, and any after it);
 *   arrivals older than that (a bucket already learned) are dropped;
 * - every bucket that ended `graceMs` before `now` is learned (with `horizonSeconds`), those
 *   with no arrival too (at most a week of them: a deployment that was off longer learns nothing
 *   of the gap), and `open` starts at the first bucket not learned.
 * Past MAX_OPEN_ARRIVALS the oldest open arrivals are dropped (a queue with more than 20,000
 * arrivals in 20 minutes learns its busiest buckets short).
 */
export function mergeArrivals(
  stored: StoredArrivals | undefined,
  mine: readonly number[],
  now: number,
  horizonSeconds: number,
  options: Pick<ArrivalModelOptions, 'alpha'> & { readonly graceMs?: number } = {},
): StoredArrivals {
  const cut = bucketStart(now - (options.graceMs ?? LEARN_GRACE_MS));
  // Nothing stored yet: learning starts with the bucket of now.
  const openStart = stored?.open?.start ?? bucketStart(now);
  const all = [...(stored?.open?.arrivals ?? []), ...mine.filter((t) => t >= openStart)].sort((a, b) => a - b);
  let history: QueueHistory = stored?.history ?? { week: new Map(), day: new Map() };
  if (openStart < cut) {
    const model = new ArrivalModel({ alpha: options.alpha ?? ARRIVAL_MODEL_DEFAULTS.alpha, learnOnline: false });
    model.load('q', history);
    model.learnPeriod('q', Math.max(openStart, cut - WEEK_MS), cut, all, horizonSeconds);
    history = model.history('q') ?? history;
  }
  const start = Math.max(openStart, cut);
  return { history, open: { start, arrivals: all.filter((t) => t >= start).slice(-MAX_OPEN_ARRIVALS) } };
}

/**
 * Where a queue's learning is kept (adapters/dynamodb/arrival-history-store.ts): one record per
 * queue with a version, written only over the version read.
 */
export interface ArrivalHistoryStore {
  /** The queue's stored learning and its version (undefined: nothing stored yet). */
  get(queue: string): Promise<{ readonly arrivals: StoredArrivals; readonly version: number } | undefined>;
  /**
   * Writes the queue's learning as version `version + 1` (1 when `version` is undefined: no record
   * yet), only if the stored version is still `version`. False: another writer got there first.
   */
  put(queue: string, arrivals: StoredArrivals, version: number | undefined, now: Date): Promise<boolean>;
}

/** Significant digits kept of a learned figure in storage. */
const STORED_DIGITS = 4;
const round = (x: number) => Number(x.toPrecision(STORED_DIGITS));

/** A profile as plain JSON: one row [bucket, n, arrivals, ...within] per bucket learned. */
type StoredProfile = number[][];

function profileToJson(m: ReadonlyMap<number, BucketStats>): StoredProfile {
  return [...m].sort((a, b) => a[0] - b[0]).map(([b, s]) => [b, s.n, round(s.arrivals), ...s.within.map(round)]);
}

function profileFromJson(rows: unknown, buckets: number, what: string): Map<number, BucketStats> {
  if (!Array.isArray(rows)) throw new Error(`stored arrivals: ${what} is not a list`);
  const m = new Map<number, BucketStats>();
  for (const row of rows) {
    if (!Array.isArray(row) || row.length < 3 || !row.every((x) => typeof x === 'number' && Number.isFinite(x)))
      throw new Error(`stored arrivals: ${what} has a bad row`);
    const [b, n, arrivals, ...within] = row as number[];
    if (!Number.isInteger(b) || (b ?? -1) < 0 || (b ?? buckets) >= buckets)
      throw new Error(`stored arrivals: ${what} bucket ${b} out of range`);
    m.set(b as number, { n: n as number, arrivals: arrivals as number, within });
  }
  return m;
}

/** The stored learning as JSON text (figures to 4 significant digits; open arrivals as ms after the bucket start). */
export function encodeArrivals(a: StoredArrivals): string {
  const sc = a.history.scoring;
  // Infinity (no agent at that price) is not JSON: -1 stands for it.
  const prices = (xs: readonly number[]) => xs.map((x) => (Number.isFinite(x) ? round(x) : -1));
  return JSON.stringify({
    week: profileToJson(a.history.week),
    day: profileToJson(a.history.day),
    ...(a.history.days?.length ? { days: a.history.days.map((d) => d.map((x) => Number(x.toFixed(3)))) } : {}),
    ...(sc
      ? {
          scoring: {
            day: sc.day,
            w: prices(sc.prices.w),
            d: prices(sc.prices.d),
            served: sc.served.map(round),
            total: round(sc.total),
          },
        }
      : {}),
    ...(a.open ? { open: [a.open.start, ...a.open.arrivals.map((t) => t - (a.open?.start ?? 0))] } : {}),
  });
}

function numberRows(rows: unknown, what: string): number[][] {
  if (!Array.isArray(rows) || !rows.every((r) => Array.isArray(r) && r.every((x) => typeof x === 'number')))
    throw new Error(`stored arrivals: ${what} is not a list of lists of numbers`);
  return rows as number[][];
}

function dayScore(v: unknown): DayScore {
  const o = v as { day?: unknown; w?: unknown; d?: unknown; served?: unknown; total?: unknown };
  if (typeof o?.day !== 'number' || typeof o.total !== 'number') throw new Error('stored arrivals: bad scoring');
  const [w = [], d = [], served = []] = numberRows([o.w, o.d, o.served], 'scoring');
  const price = (x: number) => (x < 0 ? Number.POSITIVE_INFINITY : x);
  return { day: o.day, prices: { w: w.map(price), d: d.map(price) }, served, total: o.total };
}

/** Reads encodeArrivals' text; throws naming what is wrong. */
export function decodeArrivals(text: string): StoredArrivals {
  const v = JSON.parse(text) as { week?: unknown; day?: unknown; open?: unknown; days?: unknown; scoring?: unknown };
  const history = {
    week: profileFromJson(v.week, BUCKETS_PER_WEEK, 'week'),
    day: profileFromJson(v.day, BUCKETS_PER_DAY, 'day'),
    ...(v.days === undefined ? {} : { days: numberRows(v.days, 'days') }),
    ...(v.scoring === undefined ? {} : { scoring: dayScore(v.scoring) }),
  };
  if (v.open === undefined) return { history };
  if (!Array.isArray(v.open) || !v.open.every((x) => typeof x === 'number' && Number.isFinite(x)) || v.open.length < 1)
    throw new Error('stored arrivals: open is not a list of numbers');
  const [start, ...offsets] = v.open as number[];
  return { history, open: { start: start as number, arrivals: offsets.map((d) => (start as number) + d) } };
}
