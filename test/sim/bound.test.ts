import { describe, expect, it } from 'vitest';
import { arrivalModel, idleShareBound, warmIdleBound } from '../../functions/simulate/bound.js';
import { generateTrace } from '../../functions/simulate/trace.js';

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
    const tens = warmIdleBound({ ...builds, groupSizes: [10] }, 0.5, 0);
    const ones = warmIdleBound({ ...builds, groupSizes: [1] }, 0.5, 0);
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
