/**
 * The reserve stage (functions/scaler/reserve.ts) on its own: a queue's decision (core decide())
 * reserved in the in-memory limiter, then submitted to a cluster in memory.
 */
import { describe, expect, it } from 'vitest';
import { decide } from '../../functions/core/decision.js';
import type { QueueDecider } from '../../functions/scaler/decide.js';
import { reserve } from '../../functions/scaler/reserve.js';
import { submitter } from '../../functions/scaler/submit.js';
import { stageSettings as settings, stagePorts } from '../support/stage-ports.js';

const limits = { minAgents: 0, maxAgents: 10 };

/** Queue `q` with `pending` CI jobs waiting and no agent. */
function decider(pending: number): QueueDecider {
  return {
    queue: 'q',
    limits,
    pool: undefined,
    gate: undefined,
    countsCapped: false,
    decide: (inFlight) => decide({ queue: 'q', pending, running: 0, inFlight, ...limits }),
  };
}

/** Another scaler reserved `count` tokens of `q` since this one read the limiter. */
async function concurrentReserve(s: ReturnType<typeof stagePorts>, count: number): Promise<void> {
  const now = s.clock.now;
  const result = await s.limiter.reserve({
    queue: 'q',
    count,
    max: 10,
    expectedVersion: 0,
    dispatch: {
      queue: 'q',
      dispatchId: '1',
      jobName: s.ports.jobs.jobName('q', '1'),
      count,
      tokens: count,
      status: 'submitted',
      createdAt: now,
      leaseUntil: now + settings.intentLeaseMs,
    },
  });
  expect(result).toBe('reserved');
}

describe('reserve', () => {
  it("reserves the decision's tokens in one write and submits its Job", async () => {
    const s = stagePorts();
    const view = { inFlight: 0, version: 0, settled: true };
    const result = await reserve(s.ports, settings, decider(3), view, submitter(s.ports, settings, []));
    expect(result.reserved).toBe(3);
    expect(result.decision.count).toBe(3);
    const after = await s.limiter.snapshot();
    expect(after.limiters).toEqual([{ queue: 'q', inFlight: 3, version: 1 }]);
    expect(after.dispatches.map((d) => [d.dispatchId, d.count, d.status])).toEqual([['1', 3, 'submitted']]);
    expect(s.jobs.map((j) => j.spec?.completions)).toEqual([3]);
  });

  it('reserves nothing and writes nothing when the decision is none', async () => {
    const s = stagePorts();
    const result = await reserve(s.ports, settings, decider(0), undefined, submitter(s.ports, settings, []));
    expect(result.reserved).toBe(0);
    expect(s.limiter.calls.reserve).toBe(0);
    expect(s.creates).toEqual([]);
  });

  it("decides again on the limiter's counter when a concurrent scaler moved it, and takes only what is left", async () => {
    const s = stagePorts();
    await concurrentReserve(s, 2);
    const view = { inFlight: 0, version: 0, settled: true };
    const result = await reserve(s.ports, settings, decider(3), view, submitter(s.ports, settings, []));
    expect(s.limiter.calls.reserve).toBe(3);
    expect(result.reserved).toBe(1);
    expect((await s.limiter.snapshot()).limiters).toEqual([{ queue: 'q', inFlight: 3, version: 2 }]);
  });

  it('gives up after reserveAttempts conflicts, creating nothing', async () => {
    const s = stagePorts();
    await concurrentReserve(s, 2);
    const view = { inFlight: 0, version: 0, settled: true };
    const once = { ...settings, reserveAttempts: 1 };
    const result = await reserve(s.ports, once, decider(3), view, submitter(s.ports, once, []));
    expect(result.reserved).toBe(0);
    expect(s.creates).toEqual([]);
    expect((await s.limiter.snapshot()).limiters).toEqual([{ queue: 'q', inFlight: 2, version: 1 }]);
  });
});
