/**
 * How little idle agent time ANY warm-pool policy needs to serve a given share of the jobs at
 * once, when it does not know when jobs will arrive: a lower bound, to read the warm pool's
 * figures against (README, "Adaptive warm pool"). Pure.
 *
 * A job is served at once only if an agent is already ready when it arrives (a new one takes the
 * pod start-up), and an agent kept ready idles until a job takes it. The generators' arrivals
 * are Poisson given their rate curve (groups of jobs for the bursty one: a build fanning out
 * within a few seconds), so for any policy that decides on what it has seen, not on when the
 * next job will come, a group arriving at t finds the pool B(t) the policy keeps then, and:
 *   jobs served at once = ∫ rate(t) · E[min(B(t), group size)] dt,
 *   idle agent time     ≥ ∫ B(t) dt.
 * The bound minimises the second subject to the first reaching the share, knowing the rate curve
 * exactly (more than any real policy knows): at each moment the pool that serves the most jobs
 * per idle agent-second, with one price for the whole horizon, found by bisection. "At once"
 * allows a few seconds (the target's 3 s): an agent that becomes ready that soon after the job
 * arrived counts in B(t) without idling, so that much per job served is taken off. It ignores the
 * start-up a taken agent's replacement needs (the pool is empty meanwhile), so real policies idle
 * more than it says.
 */
import { BURSTY, DIURNAL, type GeneratorName, STEADY } from './trace.js';

export interface ArrivalModel {
  /** Seconds the arrivals span. */
  readonly horizonSeconds: number;
  /** Expected group (build) arrivals per second at t. */
  rate(t: number): number;
  /** The jobs of a group: each size equally likely, or as likely as its sizeWeights entry. */
  readonly groupSizes: readonly number[];
  /** Relative likelihood of each of groupSizes (default: all alike). */
  readonly sizeWeights?: readonly number[];
  /**
   * The number of groups of the trace and its likelihood, when the generator makes an exact
   * number of jobs (their times independent draws from rate(t) / its integral): what a policy that
   * knows the job total can learn from the groups it has seen (knownTotalIdleBound). Absent:
   * Poisson arrivals, nothing to learn.
   */
  readonly groupTotals?: readonly { readonly count: number; readonly p: number }[];
}

/**
 * The builds of the bursty generator for `jobs` jobs: it draws builds of 5-30 jobs (equally
 * likely) until it has `jobs`, the last one cut short. Exact, by dynamic programming over the
 * jobs drawn so far: the expected number of builds (11.98 for 200 jobs, not 200 / 17.5 = 11.43),
 * how often a build has each size (cut ones included), and the distribution of the build count.
 */
export function burstyBuilds(jobs: number): {
  readonly expected: number;
  readonly sizes: readonly number[];
  readonly weights: readonly number[];
  readonly totals: readonly { readonly count: number; readonly p: number }[];
} {
  const n = Math.max(0, Math.floor(jobs));
  const lo = BURSTY.fanOutMin;
  const hi = BURSTY.fanOutMax;
  const each = 1 / (hi - lo + 1);
  const bySize = new Array<number>(hi + 1).fill(0);
  // at[s][g]: probability that a build starts with s jobs drawn after g builds.
  let at = new Map<number, Map<number, number>>([[0, new Map([[0, 1]])]]);
  const totals = new Map<number, number>();
  let expected = 0;
  for (let s = 0; s < n; s++) {
    const row = at.get(s);
    if (!row) continue;
    for (const [g, p] of row) {
      expected += p;
      for (let x = lo; x <= hi; x++) {
        const q = p * each;
        const size = Math.min(x, n - s);
        bySize[size] = (bySize[size] ?? 0) + q;
        if (s + x >= n) {
          totals.set(g + 1, (totals.get(g + 1) ?? 0) + q);
          continue;
        }
        let next = at.get(s + x);
        if (!next) {
          next = new Map();
          at.set(s + x, next);
        }
        next.set(g + 1, (next.get(g + 1) ?? 0) + q);
      }
    }
    at.delete(s);
  }
  at = new Map();
  const sizes: number[] = [];
  const weights: number[] = [];
  bySize.forEach((w, size) => {
    if (w > 0) {
      sizes.push(size);
      weights.push(w / expected);
    }
  });
  return {
    expected,
    sizes,
    weights,
    totals: [...totals].map(([count, p]) => ({ count, p })).sort((a, b) => a.count - b.count),
  };
}

/** The arrival model of a built-in generator (trace.ts) of `jobs` jobs. */
export function arrivalModel(name: GeneratorName, jobs: number): ArrivalModel {
  switch (name) {
    case 'steady':
      return { horizonSeconds: jobs * STEADY.meanGapSeconds, rate: () => 1 / STEADY.meanGapSeconds, groupSizes: [1] };
    case 'bursty': {
      const builds = burstyBuilds(jobs);
      const { peakSeconds: peak, endSeconds: end } = BURSTY;
      // Triangular density on [0, end] with its mode at `peak`.
      const density = (t: number) =>
        t < 0 || t > end ? 0 : t < peak ? (2 * t) / (end * peak) : (2 * (end - t)) / (end * (end - peak));
      return {
        horizonSeconds: end,
        rate: (t) => builds.expected * density(t),
        groupSizes: builds.sizes,
        sizeWeights: builds.weights,
        groupTotals: builds.totals,
      };
    }
    case 'diurnal': {
      const { daySeconds: day, peakSeconds, amplitude } = DIURNAL;
      return {
        horizonSeconds: day,
        rate: (t) => (jobs * (1 + amplitude * Math.cos((2 * Math.PI * (t - peakSeconds)) / day))) / day,
        groupSizes: [1],
        groupTotals: [{ count: jobs, p: 1 }],
      };
    }
  }
}

export interface WarmBound {
  /** Least idle agent-seconds of warm agents that serves `share` of the jobs at once. */
  readonly idleAgentSeconds: number;
  /** Jobs served at once by that pool (about share × jobs). */
  readonly served: number;
}

/** One situation a policy can be in: `weight` of the time, `rate` groups a second arriving. */
interface Moment {
  readonly weight: number;
  readonly rate: number;
}

/** E[min(b, size of a group)] for b = 0..the largest size. */
function servedPerGroup(model: Pick<ArrivalModel, 'groupSizes' | 'sizeWeights'>): number[] {
  const sizes = model.groupSizes;
  const weights = model.sizeWeights ?? sizes.map(() => 1);
  const total = weights.reduce((a, b) => a + b, 0);
  const maxPool = Math.max(...sizes);
  return Array.from(
    { length: maxPool + 1 },
    (_, b) => sizes.reduce((n, k, i) => n + Math.min(b, k) * (weights[i] ?? 0), 0) / total,
  );
}

/**
 * The least idle pool over `moments` (each `stepSeconds` long) that serves `share` of the jobs:
 * at price p (idle agent-seconds per job served) each moment keeps the pool maximising
 * rate · served(B) − B / p; one price for all, found by bisection, and where moments tie the mix
 * of the two pools around it that serves exactly the share (the lower convex hull of what
 * deterministic pools achieve: a lower bound on each of them).
 */
function leastIdle(moments: readonly Moment[], perGroup: readonly number[], share: number, stepSeconds: number) {
  const maxPool = perGroup.length - 1;
  const jobs = moments.reduce((n, m) => n + m.weight * m.rate, 0) * stepSeconds * (perGroup[maxPool] ?? 0);
  const target = share * jobs;
  const at = (price: number): WarmBound => {
    let served = 0;
    let idle = 0;
    for (const m of moments) {
      let best = 0;
      let bestValue = 0;
      for (let b = 1; b <= maxPool; b++) {
        const value = m.rate * (perGroup[b] ?? 0) - b / price;
        if (value > bestValue) {
          bestValue = value;
          best = b;
        }
      }
      served += m.weight * m.rate * (perGroup[best] ?? 0) * stepSeconds;
      idle += m.weight * best * stepSeconds;
    }
    return { idleAgentSeconds: idle, served };
  };
  if (target <= 0) return { idleAgentSeconds: 0, served: 0 };
  let lo = 0;
  let hi = 1;
  while (at(hi).served < target && hi < 1e12) hi *= 2;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (at(mid).served >= target) hi = mid;
    else lo = mid;
  }
  const below = at(lo);
  const above = at(hi);
  const mix = above.served > below.served ? (target - below.served) / (above.served - below.served) : 1;
  return {
    served: below.served + mix * (above.served - below.served),
    idleAgentSeconds: below.idleAgentSeconds + mix * (above.idleAgentSeconds - below.idleAgentSeconds),
  };
}

/**
 * The bound for serving `share` (0..1) of the model's jobs within `slackSeconds` of their
 * arrival, for a policy that knows the rate curve and nothing of the arrivals to come
 * (Poisson); stepSeconds: the integration step.
 */
export function warmIdleBound(model: ArrivalModel, share: number, slackSeconds = 3, stepSeconds = 10): WarmBound {
  const moments: Moment[] = [];
  for (let t = stepSeconds / 2; t < model.horizonSeconds; t += stepSeconds)
    moments.push({ weight: 1, rate: model.rate(t) });
  const b = leastIdle(moments, servedPerGroup(model), share, stepSeconds);
  return { idleAgentSeconds: Math.max(0, b.idleAgentSeconds - slackSeconds * b.served), served: b.served };
}

/** A model in steps: how likely a group falls in each step, and how many groups there are. */
export interface StepModel {
  readonly stepSeconds: number;
  /** Probability that a group's time falls in each step (summing to 1). */
  readonly steps: readonly number[];
  readonly totals: readonly { readonly count: number; readonly p: number }[];
  readonly groupSizes: readonly number[];
  readonly sizeWeights?: readonly number[];
}

/** An ArrivalModel with groupTotals, in steps of `stepSeconds`. */
export function stepModel(model: ArrivalModel, stepSeconds: number): StepModel {
  if (!model.groupTotals) throw new Error('the model has no known total (groupTotals)');
  const raw: number[] = [];
  for (let t = 0; t < model.horizonSeconds; t += stepSeconds) raw.push(model.rate(t + stepSeconds / 2));
  const sum = raw.reduce((a, b) => a + b, 0);
  return {
    stepSeconds,
    steps: raw.map((r) => r / sum),
    totals: model.groupTotals,
    groupSizes: model.groupSizes,
    ...(model.sizeWeights ? { sizeWeights: model.sizeWeights } : {}),
  };
}

/** log(k!) for k = 0..n. */
function logFactorials(n: number): number[] {
  const out = [0];
  for (let k = 1; k <= n; k++) out.push((out[k - 1] ?? 0) + Math.log(k));
  return out;
}

/**
 * The moments of a policy that knows how many groups the trace has and how many it has seen:
 * the groups' times are independent draws, so with G groups and k seen before a step whose
 * probability is p after a share F has passed, the step brings (G − k) · p / (1 − F) groups
 * on average, and k is Binomial(G, F).
 */
function knownTotalMoments(m: StepModel): Moment[] {
  const moments: Moment[] = [];
  const most = Math.max(0, ...m.totals.map((t) => t.count));
  const lf = logFactorials(most);
  for (const { count: g, p: pg } of m.totals) {
    if (pg <= 0) continue;
    let passed = 0;
    for (const p of m.steps) {
      const left = 1 - passed;
      if (left > 1e-12 && p > 0) {
        // k is Binomial(g, passed): beyond 12 standard deviations its weight is nil.
        const spread = 12 * Math.sqrt(g * passed * left) + 2;
        const from = Math.max(0, Math.floor(g * passed - spread));
        const to = Math.min(g - 1, Math.ceil(g * passed + spread));
        for (let k = from; k <= to; k++) {
          const logP =
            (lf[g] ?? 0) -
            (lf[k] ?? 0) -
            (lf[g - k] ?? 0) +
            (k > 0 ? k * Math.log(passed) : 0) +
            (g - k) * Math.log(left);
          const weight = pg * Math.exp(logP);
          if (weight < 1e-12) continue;
          moments.push({ weight, rate: ((g - k) * Math.min(1, p / left)) / m.stepSeconds });
        }
      }
      passed += p;
    }
  }
  return moments;
}

/**
 * The bound for a policy that also knows the job total (so the number of groups, or for the
 * bursty generator its distribution) and counts the groups it has seen: the exact-count traces
 * are not Poisson, and the groups still to come set the pool better than the rate alone
 * (remaining = total − seen). Lower than warmIdleBound; the same relaxation otherwise.
 */
export function knownTotalIdleBound(model: StepModel, share: number, slackSeconds = 3): WarmBound {
  const b = leastIdle(knownTotalMoments(model), servedPerGroup(model), share, model.stepSeconds);
  return { idleAgentSeconds: Math.max(0, b.idleAgentSeconds - slackSeconds * b.served), served: b.served };
}

/**
 * The least idle share of agent time with `share` of the jobs served at once: the warm agents'
 * idle time on top of one start-up per agent (an ephemeral agent takes one job), over all the
 * agent time (`usedAgentSeconds`: the CI jobs' run time). `persistent`: agents that stay for
 * several jobs need no start-up per job, so only the warm idle time counts (a separate, lower
 * bound). With the model's known total (groupTotals) the known-total warm bound is used.
 */
export function idleShareBound(
  model: ArrivalModel,
  o: {
    readonly share: number;
    readonly slackSeconds: number;
    readonly agents: number;
    readonly startupSeconds: number;
    readonly usedAgentSeconds: number;
    readonly knownTotal?: boolean;
    readonly persistent?: boolean;
  },
): number {
  const warm = (
    o.knownTotal && model.groupTotals
      ? knownTotalIdleBound(stepModel(model, KNOWN_TOTAL_STEP_SECONDS), o.share, o.slackSeconds)
      : warmIdleBound(model, o.share, o.slackSeconds)
  ).idleAgentSeconds;
  const idle = warm + (o.persistent ? 0 : o.agents * o.startupSeconds);
  return idle / (idle + o.usedAgentSeconds);
}

/** The step of the known-total bound (a day in minutes). */
const KNOWN_TOTAL_STEP_SECONDS = 60;

/** The bounds beside a trace (the CLI's --json, the README's example): idle shares at `share` served. */
export interface TraceBounds {
  readonly share: number;
  readonly slackSeconds: number;
  /** Knowing the rate curve only (Poisson arrivals), one start-up per ephemeral agent. */
  readonly rateOnly: number;
  /** Knowing the job total too (remaining = total − seen), one start-up per ephemeral agent. */
  readonly knownTotal: number;
  /** Knowing the job total, with agents that stay for several jobs (no start-up per job). */
  readonly persistent: number;
}

export function traceBounds(
  model: ArrivalModel,
  o: {
    readonly share: number;
    readonly slackSeconds: number;
    readonly agents: number;
    readonly startupSeconds: number;
    readonly usedAgentSeconds: number;
  },
): TraceBounds {
  const round = (x: number) => Math.round(x * 10_000) / 10_000;
  return {
    share: o.share,
    slackSeconds: o.slackSeconds,
    rateOnly: round(idleShareBound(model, o)),
    knownTotal: round(idleShareBound(model, { ...o, knownTotal: true })),
    persistent: round(idleShareBound(model, { ...o, knownTotal: true, persistent: true })),
  };
}
