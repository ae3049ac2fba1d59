import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../tools/simulate/clock.js';
import { generatorHistory } from '../../tools/simulate/history.js';
import { simulate } from '../../tools/simulate/simulate.js';
import { generateTrace } from '../../tools/simulate/trace.js';

/** ours-warm as `npm run simulate -- --generate NAME --jobs N --max 60` runs it: 14 earlier days, seeds 2..15. */
async function oursWarm(name: 'bursty' | 'diurnal', jobs: number) {
  const report = await simulate(generateTrace(name, { jobs, seed: 1 }), {
    policies: ['ours-warm'],
    maxAgents: 60,
    seed: 1,
    warmHistory: generatorHistory(name, jobs, 1, new VirtualClock().epochMs),
  });
  const r = report.results[0];
  if (!r) throw new Error('no result');
  return r;
}

describe('ours-warm with the learned arrival model (issue 19 point 2)', () => {
  it('bursty, 200 jobs, MAX 60: p50 wait <= 3 s at idle <= 42 % (1.2x the bound), agents kept, not churned', async () => {
    const r = await oursWarm('bursty', 200);
    expect(r.wait.p50).toBeLessThanOrEqual(3);
    expect(r.agentSeconds.idleFraction).toBeLessThanOrEqual(0.42);
    // Before: 656 pods for 200 jobs (warm agents timed out and were made again).
    expect(r.agentPods).toBeLessThan(300);
    expect(r.neverStarted).toBe(0);
    // Surplus agents are stopped by pod deletion, busy ones included: none is killed mid-job.
    expect(r.interrupted).toBe(0);
  }, 60_000);

  it('diurnal, 1,000 jobs, MAX 60: p50 wait <= 3 s at idle <= 18 % (1.2x the bound; share chosen from scored days, was 18.3 % at a fixed 0.56)', async () => {
    const r = await oursWarm('diurnal', 1000);
    expect(r.wait.p50).toBeLessThanOrEqual(3);
    expect(r.agentSeconds.idleFraction).toBeLessThanOrEqual(0.18);
    expect(r.agentPods).toBeLessThan(1200); // before: 1,706
    expect(r.neverStarted).toBe(0);
    expect(r.interrupted).toBe(0);
  }, 120_000);
});
