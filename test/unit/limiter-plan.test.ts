import { describe, expect, it } from 'vitest';
import { type ClusterJob, planReconcile } from '../../functions/core/limiter.js';
import type { DispatchRecord } from '../../functions/core/stores.js';

const now = 1_000_000;
function dispatch(over: Partial<DispatchRecord> = {}): DispatchRecord {
  return {
    queue: 'default',
    dispatchId: 'v1',
    jobName: 'agent-default-v1',
    count: 3,
    tokens: 3,
    status: 'submitted',
    createdAt: now - 10_000,
    leaseUntil: now + 60_000,
    // Its one create was answered: nothing of it can land any more.
    attempts: 1,
    settled: 1,
    createsUntil: now + 30_000,
    ...over,
  };
}
function job(over: Partial<ClusterJob> = {}): ClusterJob {
  return { jobName: 'agent-default-v1', queue: 'default', dispatchId: 'v1', live: 3, ...over };
}
const limiter = (inFlight: number, version = 7) => ({ queue: 'default', inFlight, version });

describe('planReconcile: Kubernetes is the truth for what is in flight', () => {
  it('keeps a live Job whose tokens match', () => {
    const plan = planReconcile({ limiters: [limiter(3)], dispatches: [dispatch()], jobs: [job()], now });
    expect(plan.actions.map((a) => a.kind)).toEqual(['keep']);
    expect(plan.corrections).toEqual([]);
    expect(plan.inFlight).toEqual({ default: 3 });
  });

  it('returns the tokens of agents that finished (pods still Pending count as in flight)', () => {
    const plan = planReconcile({ limiters: [limiter(3)], dispatches: [dispatch()], jobs: [job({ live: 1 })], now });
    expect(plan.actions[0]).toMatchObject({ kind: 'update', tokens: 1, markSubmitted: false });
    expect(plan.corrections).toEqual([{ queue: 'default', expectedVersion: 7, from: 3, to: 1 }]);
  });

  it('releases a finished Job and a vanished (deleted) Job', () => {
    const plan = planReconcile({
      limiters: [limiter(5)],
      dispatches: [dispatch(), dispatch({ dispatchId: 'v2', jobName: 'agent-default-v2', count: 2, tokens: 2 })],
      jobs: [job({ live: 0 })],
      now,
    });
    expect(plan.actions.map((a) => a.kind === 'release' && a.why)).toEqual(['job-finished', 'job-gone']);
    expect(plan.corrections).toEqual([{ queue: 'default', expectedVersion: 7, from: 5, to: 0 }]);
  });

  it('retries an intent that never became a Job while its lease holds, releases it after', () => {
    const intent = dispatch({ status: 'intent' });
    const retry = planReconcile({ limiters: [limiter(3)], dispatches: [intent], jobs: [], now });
    expect(retry.actions[0]).toMatchObject({ kind: 'create', tokens: 3 });
    expect(retry.inFlight.default).toBe(3);
    const expired = planReconcile({ limiters: [limiter(3)], dispatches: [intent], jobs: [], now: intent.leaseUntil });
    expect(expired.actions[0]).toMatchObject({ kind: 'release', why: 'lease-expired' });
    expect(expired.inFlight.default).toBe(0);
  });

  it('marks an intent whose Job exists as submitted', () => {
    const plan = planReconcile({
      limiters: [limiter(3)],
      dispatches: [dispatch({ status: 'intent' })],
      jobs: [job()],
      now,
    });
    expect(plan.actions[0]).toMatchObject({ kind: 'update', tokens: 3, markSubmitted: true });
  });

  it('corrects a drifted counter and counts orphan Jobs of ours', () => {
    const plan = planReconcile({
      limiters: [limiter(9)],
      dispatches: [dispatch()],
      jobs: [job(), job({ jobName: 'by-hand', dispatchId: 'x', live: 2 })],
      now,
    });
    expect(plan.orphans).toEqual({ default: 2 });
    expect(plan.corrections).toEqual([{ queue: 'default', expectedVersion: 7, from: 9, to: 5 }]);
  });

  it('reports served queues with nothing in flight, with version 0 when no limiter exists', () => {
    const plan = planReconcile({ limiters: [], dispatches: [], jobs: [], now, queues: ['a', 'b'] });
    expect(plan.inFlight).toEqual({ a: 0, b: 0 });
    expect(plan.versions).toEqual({ a: 0, b: 0 });
    expect(plan.corrections).toEqual([]);
  });
});

describe('planReconcile: an intent near the end of its lease', () => {
  it('is neither created nor released in the grace period, then released', () => {
    const intent = dispatch({ status: 'intent', leaseUntil: now + 30_000 });
    const input = { limiters: [limiter(3)], dispatches: [intent], jobs: [], createGraceMs: 60_000 };
    const hold = planReconcile({ ...input, now });
    expect(hold.actions[0]).toMatchObject({ kind: 'keep', tokens: 3 });
    expect(hold.inFlight.default).toBe(3);
    const after = planReconcile({ ...input, now: now + 30_000 });
    expect(after.actions[0]).toMatchObject({ kind: 'release', why: 'lease-expired' });
  });
});

describe('planReconcile: no token comes back while a create of its dispatch can still land', () => {
  const unanswered = { attempts: 2, settled: 1, createsUntil: now + 30_000 };

  it('a deleted Job keeps its full count while a fenced create is unanswered, and is released after', () => {
    const d = dispatch(unanswered);
    const held = planReconcile({ limiters: [limiter(3)], dispatches: [d], jobs: [], now });
    expect(held.actions[0]).toMatchObject({ kind: 'keep', tokens: 3 });
    expect(held.inFlight.default).toBe(3);
    // No agents though: the decision must not count them as idle.
    expect(held.supply.default).toBe(0);
    const after = planReconcile({ limiters: [limiter(3)], dispatches: [d], jobs: [], now: now + 30_000 });
    expect(after.actions[0]).toMatchObject({ kind: 'release', why: 'job-gone' });
  });

  it('a finished or shrunk Job keeps its full count while a create can land (it would come back whole)', () => {
    const d = dispatch({ ...unanswered, tokens: 3 });
    const finished = planReconcile({ limiters: [limiter(3)], dispatches: [d], jobs: [job({ live: 0 })], now });
    expect(finished.actions[0]).toMatchObject({ kind: 'keep', tokens: 3 });
    expect(finished.supply.default).toBe(0);
    const shrunk = planReconcile({ limiters: [limiter(3)], dispatches: [d], jobs: [job({ live: 1 })], now });
    expect(shrunk.actions[0]).toMatchObject({ kind: 'keep', tokens: 3 });
    expect(shrunk.supply.default).toBe(1);
    // Tokens shrunk earlier (by a version without fencing) are restored.
    const restored = planReconcile({
      limiters: [limiter(1)],
      dispatches: [{ ...d, tokens: 1 }],
      jobs: [job({ live: 1 })],
      now,
    });
    expect(restored.actions[0]).toMatchObject({ kind: 'update', tokens: 3 });
    expect(restored.inFlight.default).toBe(3);
  });

  it('a dispatch written before fencing is held until its lease ends', () => {
    const { attempts: _a, settled: _s, createsUntil: _c, ...legacy } = dispatch();
    const held = planReconcile({ limiters: [limiter(3)], dispatches: [legacy], jobs: [], now });
    expect(held.actions[0]).toMatchObject({ kind: 'keep', tokens: 3 });
    const after = planReconcile({ limiters: [limiter(3)], dispatches: [legacy], jobs: [], now: legacy.leaseUntil });
    expect(after.actions[0]).toMatchObject({ kind: 'release', why: 'job-gone' });
  });
});
