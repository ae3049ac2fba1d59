/**
 * Back-off in proportion to the failure (issue 21, point 9), on randomized schedules
 * (backoff-model.ts: the real QueueBackoff fed as the scaler feeds it): sporadic failures at
 * start never leave a queue with CI jobs waiting and no agent, while a persistent failure costs
 * no more Jobs than the bound back-off always had.
 */
import { describe, expect, it } from 'vitest';
import { POLICY, runBackoffSchedule, TICK_MS } from './backoff-model.js';

const SEEDS = Array.from({ length: 40 }, (_, i) => i + 1);

describe('back-off under randomized start failures', () => {
  it('6 % of agents failing at start: the back-off never holds CI jobs that have no agent', () => {
    const runs = SEEDS.map((seed) => ({ seed, ...runBackoffSchedule({ seed, failRate: 0.06 }) }));
    expect(runs.reduce((n, r) => n + r.agentsFailed, 0)).toBeGreaterThan(0);
    const stalls = runs.filter((r) => r.longestStallMs > 0);
    expect(
      stalls.map(
        (r) => `seed ${r.seed}: ${r.waitingInStall} waiting with no agent, held for ${r.longestStallMs / 1000} s`,
      ),
    ).toEqual([]);
  });

  it('20 % failing at start (a bad node pool): held at most one tick, when a cold queue starts with failures', () => {
    const runs = SEEDS.map((seed) => ({ seed, ...runBackoffSchedule({ seed, failRate: 0.2 }) }));
    const stalls = runs.filter((r) => r.longestStallMs > TICK_MS);
    expect(
      stalls.map(
        (r) => `seed ${r.seed}: ${r.waitingInStall} waiting with no agent, held for ${r.longestStallMs / 1000} s`,
      ),
    ).toEqual([]);
  });

  it('every agent failing at start: no more Jobs than the bound 1 + ceil(log2(1 + T/base)), then one per cap', () => {
    // README, "Agents that fail at start: back-off": 6 Jobs in 10 minutes with base 30 s and cap
    // 600 s, then one more per 600 s. T counts from the first Job (the first CI job's arrival).
    const bound = (ms: number) =>
      ms <= POLICY.maxMs
        ? 1 + Math.ceil(Math.log2(1 + ms / POLICY.baseMs))
        : 1 + Math.ceil(Math.log2(1 + POLICY.maxMs / POLICY.baseMs)) + Math.ceil((ms - POLICY.maxMs) / POLICY.maxMs);
    for (const seed of SEEDS) {
      const r = runBackoffSchedule({ seed, failRate: 0, persistent: true, durationMs: 20 * 60_000 });
      expect(r.jobsCreated, `seed ${seed}`).toBeLessThanOrEqual(bound(20 * 60_000 - r.firstJobAt));
      expect(r.ciJobsRun).toBe(0);
    }
  });
});
