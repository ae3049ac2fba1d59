import { describe, expect, it } from 'vitest';
import { decide } from '../../functions/core/decision.js';
import { WarmPoolTracker, warmPoolFor } from '../../functions/core/warm-pool.js';
import { DEFAULT_OPTIONS, runPolicy } from '../../tools/simulate/simulate.js';
import type { TraceJob } from '../../tools/simulate/trace.js';

const s = (x: number) => x * 1000;

describe('warm pool sizing (core/warm-pool.ts)', () => {
  it('is the quantile of the arrivals within one start-up before each arrival', () => {
    // Bursts of 4 jobs every 60 s, start-up horizon 20 s: each arrival sees 1, 2, 3, 4 in its horizon.
    const arrivals = [0, 60, 120].flatMap((t) => [t, t + 1, t + 2, t + 3].map(s));
    expect(warmPoolFor(arrivals, s(125), 20, { quantile: 0.5 })).toBe(2);
    expect(warmPoolFor(arrivals, s(125), 20, { quantile: 0.75 })).toBe(3);
    expect(warmPoolFor(arrivals, s(125), 20, { quantile: 1 })).toBe(4);
    // A sparse stream: one job per minute needs one warm agent.
    expect(warmPoolFor([0, 60, 120].map(s), s(125), 20)).toBe(1);
  });

  it('shrinks to 0 when arrivals stop (older than the window)', () => {
    const arrivals = [0, 1, 2].map(s);
    expect(warmPoolFor(arrivals, s(60), 20, { windowMs: s(600) })).toBeGreaterThan(0);
    expect(warmPoolFor(arrivals, s(603), 20, { windowMs: s(600) })).toBe(0);
    expect(warmPoolFor([], s(10), 20)).toBe(0);
  });

  it('measures start-up from our Jobs: creation to the first look that sees a pod ready (midpoint)', () => {
    const t = new WarmPoolTracker({ startupPriorSeconds: 30 });
    expect(t.size('q', s(0)).startupSeconds).toBe(30); // the prior, nothing measured yet
    t.observe([{ name: 'a', queue: 'q', createdAt: s(0), ready: false }], s(10));
    expect(t.starting(s(10))).toBe(true); // the scaler looks again soon, to time it closely
    t.observe([{ name: 'a', queue: 'q', createdAt: s(0), ready: true }], s(20));
    expect(t.starting(s(20))).toBe(false);
    // Not ready at 10, ready at 20: 15 s.
    expect(t.size('q', s(20))).toMatchObject({ startupSeconds: 15, startupSamples: 1 });
    // Seen again: not sampled twice.
    t.observe([{ name: 'a', queue: 'q', createdAt: s(0), ready: true }], s(30));
    expect(t.size('q', s(30)).startupSamples).toBe(1);
  });

  it('stops counting a Job as starting after three start-ups without a pod ready (it is stuck)', () => {
    const t = new WarmPoolTracker({ startupPriorSeconds: 30 });
    t.observe([{ name: 'stuck', queue: 'q', createdAt: s(0), ready: false }], s(60));
    expect(t.starting(s(60))).toBe(true);
    t.observe([{ name: 'stuck', queue: 'q', createdAt: s(0), ready: false }], s(95));
    expect(t.starting(s(95))).toBe(false); // ImagePullBackOff, unschedulable: back-off's business
  });

  it('counts the arrivals it is told of, per queue, and reports the rate', () => {
    const t = new WarmPoolTracker({ windowMs: s(600), startupPriorSeconds: 17, reactionSeconds: 3 });
    for (const at of [0, 1, 2, 3]) t.arrived('q', s(at), s(at));
    const size = t.size('q', s(5));
    expect(size.warm).toBe(3); // 1, 2, 3, 4 in 20 s -> 0.75 quantile
    expect(size.arrivalsPerMinute).toBe(0.4);
    expect(t.size('other', s(5)).warm).toBe(0);
    expect(t.size('q', s(700)).warm).toBe(0);
  });
});

describe('decide() with a warm pool', () => {
  const base = { queue: 'q', pending: 0, running: 0, inFlight: 0, minAgents: 0, maxAgents: 10 };

  it('adds the pool on top of pending demand, within MAX', () => {
    expect(decide({ ...base, warm: 3 })).toMatchObject({ count: 3, reason: 'warm' });
    expect(decide({ ...base, pending: 2, warm: 3 })).toMatchObject({ count: 5, reason: 'warm' });
    // Idle agents (in flight, not running) already count towards it.
    expect(decide({ ...base, inFlight: 3, warm: 3 })).toMatchObject({ count: 0, reason: 'none' });
    expect(decide({ ...base, pending: 9, warm: 3 })).toMatchObject({ count: 10, reason: 'capped' });
  });

  it('without a pool decides as before', () => {
    expect(decide({ ...base, pending: 2 })).toMatchObject({ count: 2, reason: 'demand' });
    expect(decide({ ...base, minAgents: 2 })).toMatchObject({ count: 2, reason: 'floor' });
    expect(decide({ ...base, pending: 2, warm: 0 })).toMatchObject({ count: 2, reason: 'demand' });
  });
});

describe('the warm pool in the real scaler (simulated)', () => {
  it('jobs arriving every 40 s find an agent ready, where scale-from-zero waits the start-up', async () => {
    const trace: TraceJob[] = Array.from({ length: 30 }, (_, i) => ({
      id: `j${i}`,
      at: 10 + i * 40,
      queue: 'default',
      duration: 30,
    }));
    const options = { ...DEFAULT_OPTIONS, podStartupSeconds: 15, maxAgents: 10 };
    const cold = await runPolicy('ours', trace, options);
    const warm = await runPolicy('ours-warm', trace, options);
    expect(cold.wait.p50).toBeGreaterThanOrEqual(15);
    expect(warm.wait.p50).toBe(0);
    expect(warm.errors).toEqual([]);
    expect(warm.maxInFlightByQueue.default).toBeLessThanOrEqual(10);
  });

  it('logs its inputs in the scaling decision', async () => {
    const lines: Record<string, unknown>[] = [];
    const log = (message: string, extra?: Record<string, unknown>) => {
      if (message === 'scaling decision' && extra) lines.push(extra);
    };
    await runPolicy('ours-warm', [{ id: 'a', at: 5, queue: 'default', duration: 20 }], {
      ...DEFAULT_OPTIONS,
      scalerLog: { debug: log, info: log, warn: log, error: log },
    });
    expect(lines.some((l) => l.warm === 1 && typeof l.arrivalsPerMinute === 'number')).toBe(true);
    expect(lines.every((l) => 'startupSeconds' in l && 'startupSamples' in l)).toBe(true);
  });
});
