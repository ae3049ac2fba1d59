import { describe, expect, it } from 'vitest';
import {
  arrivalModel,
  burstyBuilds,
  idleShareBound,
  knownTotalIdleBound,
  type StepModel,
  stepModel,
  traceBounds,
  warmIdleBound,
} from '../../tools/simulate/bound.js';
import { generateTrace } from '../../tools/simulate/trace.js';

describe('least idle time of a warm pool without foreknowledge (bound.ts)', () => {
  it('at a flat rate, serving half the jobs takes an agent ready half the time', () => {
    // 3 jobs a minute for 4,000 s: an agent ready 2,000 s serves 100 of the 200, less 3 s each
    // for agents that become ready within the target's 3 s.
    const b = warmIdleBound(arrivalModel('steady', 200), 0.5);
    expect(b.served).toBeCloseTo(100, 0);
    expect(b.idleAgentSeconds).toBeCloseTo(2000 - 3 * 100, -1);
  });

  it('keeps the pool at the busiest hours: the diurnal half of the jobs in about 6.5 hours', () => {
    const b = warmIdleBound(arrivalModel('diurnal', 1000), 0.5, 0);
    // Half of a 1 + 0.95 cos curve lies within ±0.854 rad of its peak: 2 × 0.854 / 2π of a day.
    expect(b.idleAgentSeconds / 3600).toBeCloseTo(((2 * 0.854) / (2 * Math.PI)) * 24, 1);
  });

  it('needs as many agents ready as a build fans out to', () => {
    const builds = arrivalModel('bursty', 200);
    const tens = warmIdleBound({ ...builds, groupSizes: [10], sizeWeights: [1] }, 0.5, 0);
    const ones = warmIdleBound({ ...builds, groupSizes: [1], sizeWeights: [1] }, 0.5, 0);
    // The same build arrivals: half the jobs of 10-job builds take 10 agents ready for as long.
    expect(tens.idleAgentSeconds / ones.idleAgentSeconds).toBeCloseTo(10, 1);
    // Builds of 5-30: more than a lone job's worth of agent time per job served.
    const bursty = warmIdleBound(builds, 0.5, 0);
    expect(bursty.idleAgentSeconds / bursty.served).toBeGreaterThan(ones.idleAgentSeconds / ones.served);
  });

  it('grows with the share served, and matches the generators it models', () => {
    const model = arrivalModel('diurnal', 1000);
    const shares = [0.25, 0.5, 0.75, 0.95].map((s) => warmIdleBound(model, s).idleAgentSeconds);
    expect(shares).toEqual([...shares].sort((a, b) => a - b));
    // The model's expected jobs per hour of the day follow the generated trace's.
    const trace = generateTrace('diurnal', { jobs: 1000, seed: 1 });
    const afternoon = trace.filter((j) => j.at >= 12 * 3600 && j.at < 16 * 3600).length;
    let expected = 0;
    for (let t = 12 * 3600; t < 16 * 3600; t += 60) expected += model.rate(t + 30) * 60;
    expect(Math.abs(afternoon - expected)).toBeLessThan(4 * Math.sqrt(expected));
  });

  it('as a share of agent time: warm idle and one start-up per agent over all agent time', () => {
    const model = arrivalModel('steady', 200);
    const warm = warmIdleBound(model, 0.5).idleAgentSeconds;
    const share = idleShareBound(model, {
      share: 0.5,
      slackSeconds: 3,
      agents: 200,
      startupSeconds: 15,
      usedAgentSeconds: 200 * 180,
    });
    expect(share).toBeCloseTo((warm + 200 * 15) / (warm + 200 * 15 + 200 * 180), 6);
  });
});

/**
 * Every deterministic policy of a small discrete trace, evaluated by enumerating every outcome:
 * groups fall in steps independently (probabilities `steps`), sizes independently; a policy
 * keeps pool B(step, groups seen before the step); a group served min(B, size) jobs; idle = the
 * pools kept. Returns (served, idle) of each policy.
 */
function everyPolicy(m: StepModel, groups: number, maxPool: number): { served: number; idle: number }[] {
  const slots = m.steps.length;
  const states = slots * groups; // (step, seen) with seen < groups; with all seen the pool is 0
  const sizeP = m.groupSizes.map(
    (_, i) => (m.sizeWeights?.[i] ?? 1) / (m.sizeWeights ?? m.groupSizes.map(() => 1)).reduce((a, b) => a + b, 0),
  );
  // Every outcome: each group's step and size, with its probability.
  const outcomes: { p: number; step: number[]; size: number[] }[] = [];
  const total = (slots * m.groupSizes.length) ** groups;
  for (let code = 0; code < total; code++) {
    let c = code;
    let p = 1;
    const step: number[] = [];
    const size: number[] = [];
    for (let g = 0; g < groups; g++) {
      const st = c % slots;
      c = Math.floor(c / slots);
      const sz = c % m.groupSizes.length;
      c = Math.floor(c / m.groupSizes.length);
      p *= (m.steps[st] ?? 0) * (sizeP[sz] ?? 0);
      step.push(st);
      size.push(m.groupSizes[sz] ?? 0);
    }
    outcomes.push({ p, step, size });
  }
  const results: { served: number; idle: number }[] = [];
  for (let code = 0; code < (maxPool + 1) ** states; code++) {
    const pool: number[] = [];
    for (let c = code, i = 0; i < states; i++, c = Math.floor(c / (maxPool + 1))) pool.push(c % (maxPool + 1));
    let served = 0;
    let idle = 0;
    for (const o of outcomes) {
      let seen = 0;
      for (let st = 0; st < slots; st++) {
        const b = seen < groups ? (pool[st * groups + seen] ?? 0) : 0;
        idle += o.p * b * m.stepSeconds;
        o.step.forEach((s, g) => {
          if (s === st) served += o.p * Math.min(b, o.size[g] ?? 0);
        });
        seen += o.step.filter((s) => s === st).length;
      }
    }
    results.push({ served, idle });
  }
  return results;
}

/** The least idle that serves `target` by mixing two policies (the lower convex hull). */
function hullAt(all: readonly { served: number; idle: number }[], target: number): number {
  // Only the policies no other serves as much with less idle can be on the hull.
  const points: { served: number; idle: number }[] = [];
  let least = Number.POSITIVE_INFINITY;
  for (const p of [...all].sort((a, b) => b.served - a.served || a.idle - b.idle)) {
    if (p.idle < least) {
      points.push(p);
      least = p.idle;
    }
  }
  let best = Number.POSITIVE_INFINITY;
  for (const a of points)
    for (const b of points) {
      if (a.served > target + 1e-9 || b.served < target - 1e-9) continue;
      if (b.served - a.served < 1e-9) {
        best = Math.min(best, b.idle);
        continue;
      }
      const mix = Math.min(1, Math.max(0, (target - a.served) / (b.served - a.served)));
      best = Math.min(best, a.idle + mix * (b.idle - a.idle));
    }
  return best;
}

describe('the bound corrected (issue 19): build count, known job total, persistent agents', () => {
  it('counts the builds the bursty generator really makes, the last one cut short', () => {
    const b = burstyBuilds(200);
    // Not 200 / 17.5 = 11.43: the draws go on until 200 jobs, and the last build is cut.
    expect(b.expected).toBeCloseTo(11.99, 2);
    // The sizes, cut builds included, account for exactly 200 jobs.
    const jobs = b.sizes.reduce((n, size, i) => n + size * (b.weights[i] ?? 0), 0) * b.expected;
    expect(jobs).toBeCloseTo(200, 9);
    expect(b.totals.reduce((n, t) => n + t.p, 0)).toBeCloseTo(1, 9);
    expect(b.totals.reduce((n, t) => n + t.count * t.p, 0)).toBeCloseTo(b.expected, 9);
    // ... and the generator agrees: builds of 5-30 jobs within 5 s, counted where they do not overlap.
    let builds = 0;
    let seeds = 0;
    for (let seed = 1; seed <= 200; seed++) {
      const at = generateTrace('bursty', { jobs: 200, seed }).map((j) => j.at);
      const starts = at.filter((t, i) => i === 0 || t - (at[i - 1] ?? 0) > 5);
      // Only traces whose builds all stand apart (gaps > 5 s between them) count.
      const gaps = starts.slice(1).map((t, i) => t - (starts[i] ?? 0));
      if (gaps.some((g) => g < 10)) continue;
      builds += starts.length;
      seeds++;
    }
    expect(seeds).toBeGreaterThan(20);
    expect(Math.abs(builds / seeds - b.expected)).toBeLessThan(1);
  });

  it('knowing the job total is the exact optimum of every policy on small traces (brute force)', () => {
    const m: StepModel = {
      stepSeconds: 1,
      steps: [0.1, 0.4, 0.3, 0.2],
      totals: [{ count: 2, p: 1 }],
      groupSizes: [1, 2],
      sizeWeights: [1, 1],
    };
    const points = everyPolicy(m, 2, 2);
    const jobs = 2 * 1.5;
    for (const share of [0.2, 0.4, 0.5, 0.7, 0.9]) {
      const bound = knownTotalIdleBound(m, share, 0);
      expect(bound.served).toBeCloseTo(share * jobs, 6);
      // A lower bound of every policy, and no lower than mixing the best two.
      const deterministic = Math.min(...points.filter((p) => p.served >= share * jobs - 1e-9).map((p) => p.idle));
      expect(bound.idleAgentSeconds).toBeLessThanOrEqual(deterministic + 1e-9);
      expect(bound.idleAgentSeconds).toBeCloseTo(hullAt(points, share * jobs), 6);
    }
  });

  it('single jobs: the brute force agrees with three jobs over four steps too', () => {
    const m: StepModel = {
      stepSeconds: 2,
      steps: [0.3, 0.1, 0.35, 0.25],
      totals: [{ count: 3, p: 1 }],
      groupSizes: [1],
    };
    const points = everyPolicy(m, 3, 1);
    for (const share of [0.3, 0.6, 0.8]) {
      expect(knownTotalIdleBound(m, share, 0).idleAgentSeconds).toBeCloseTo(hullAt(points, share * 3), 6);
    }
  });

  it('knowing the total needs less warm idle than knowing the rate; persistent agents less again', () => {
    const model = arrivalModel('bursty', 200);
    const rate = warmIdleBound(model, 0.5).idleAgentSeconds;
    const known = knownTotalIdleBound(stepModel(model, 60), 0.5).idleAgentSeconds;
    expect(known).toBeLessThan(0.9 * rate);
    const b = traceBounds(model, {
      share: 0.5,
      slackSeconds: 3,
      agents: 200,
      startupSeconds: 15,
      usedAgentSeconds: 200 * 180,
    });
    expect(b.knownTotal).toBeLessThan(b.rateOnly);
    expect(b.persistent).toBeLessThan(b.knownTotal);
    expect(b.persistent).toBeCloseTo(known / (known + 200 * 180), 3);
  });
});
