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
  /** The jobs of a group: each size equally likely. */
  readonly groupSizes: readonly number[];
}

/** The arrival model of a built-in generator (trace.ts) of `jobs` jobs. */
export function arrivalModel(name: GeneratorName, jobs: number): ArrivalModel {
  switch (name) {
    case 'steady':
      return { horizonSeconds: jobs * STEADY.meanGapSeconds, rate: () => 1 / STEADY.meanGapSeconds, groupSizes: [1] };
    case 'bursty': {
      const sizes = Array.from({ length: BURSTY.fanOutMax - BURSTY.fanOutMin + 1 }, (_, i) => BURSTY.fanOutMin + i);
      const groups = jobs / (sizes.reduce((a, b) => a + b, 0) / sizes.length);
      const { peakSeconds: peak, endSeconds: end } = BURSTY;
      // Triangular density on [0, end] with its mode at `peak`.
      const density = (t: number) =>
        t < 0 || t > end ? 0 : t < peak ? (2 * t) / (end * peak) : (2 * (end - t)) / (end * (end - peak));
      return { horizonSeconds: end, rate: (t) => groups * density(t), groupSizes: sizes };
    }
    case 'diurnal': {
      const { daySeconds: day, peakSeconds, amplitude } = DIURNAL;
      return {
        horizonSeconds: day,
        rate: (t) => (jobs * (1 + amplitude * Math.cos((2 * Math.PI * (t - peakSeconds)) / day))) / day,
        groupSizes: [1],
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

/**
 * The bound for serving `share` (0..1) of the model's jobs within `slackSeconds` of their
 * arrival; stepSeconds: the integration step.
 */
export function warmIdleBound(model: ArrivalModel, share: number, slackSeconds = 3, stepSeconds = 10): WarmBound {
  const sizes = model.groupSizes;
  const maxPool = Math.max(...sizes);
  // E[min(B, size)] for B = 0..maxPool.
  const servedPerGroup = Array.from(
    { length: maxPool + 1 },
    (_, b) => sizes.reduce((n, k) => n + Math.min(b, k), 0) / sizes.length,
  );
  const rates: number[] = [];
  for (let t = stepSeconds / 2; t < model.horizonSeconds; t += stepSeconds) rates.push(model.rate(t));
  const jobs = rates.reduce((n, r) => n + r, 0) * stepSeconds * (servedPerGroup[maxPool] ?? 0);
  const target = share * jobs;
  // At price p (idle agent-seconds per job served), each moment keeps the pool maximising
  // rate · served(B) − B / p.
  const at = (price: number): WarmBound => {
    let served = 0;
    let idle = 0;
    for (const r of rates) {
      let best = 0;
      let bestValue = 0;
      for (let b = 1; b <= maxPool; b++) {
        const value = r * (servedPerGroup[b] ?? 0) - b / price;
        if (value > bestValue) {
          bestValue = value;
          best = b;
        }
      }
      served += r * (servedPerGroup[best] ?? 0) * stepSeconds;
      idle += best * stepSeconds;
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
  // Where moments tie (a flat rate), the best keeps the higher pool part of the time only: the
  // mix of the two pools around the price that serves exactly the target.
  const below = at(lo);
  const above = at(hi);
  const mix = above.served > below.served ? (target - below.served) / (above.served - below.served) : 1;
  const served = below.served + mix * (above.served - below.served);
  const idle = below.idleAgentSeconds + mix * (above.idleAgentSeconds - below.idleAgentSeconds);
  return { idleAgentSeconds: Math.max(0, idle - slackSeconds * served), served };
}

/**
 * The least idle share of agent time with `share` of the jobs served at once: the warm agents'
 * idle time on top of one start-up per agent (every job needs its own agent), over all the
 * agent time (`usedAgentSeconds`: the CI jobs' run time).
 */
export function idleShareBound(
  model: ArrivalModel,
  o: {
    readonly share: number;
    readonly slackSeconds: number;
    readonly agents: number;
    readonly startupSeconds: number;
    readonly usedAgentSeconds: number;
  },
): number {
  const warm = warmIdleBound(model, o.share, o.slackSeconds).idleAgentSeconds;
  const idle = warm + o.agents * o.startupSeconds;
  return idle / (idle + o.usedAgentSeconds);
}
