/**
 * The reconcile stage (functions/scaler/reconcile.ts: snapshot, then reconcile) on its own, over
 * the in-memory ledger and limiter and a cluster in memory. The dispatches it works on are made
 * by one provision() first, as a tick would have left them.
 */
import { describe, expect, it } from 'vitest';
import { reconcile, snapshot } from '../../functions/scaler/reconcile.js';
import { provision } from '../../functions/scaler/scaler.js';
import { submitter } from '../../functions/scaler/submit.js';
import type { TickError } from '../../functions/scaler/tick-error.js';
import { jobEvent } from '../support/job-events.js';
import { stageSettings as settings, stagePorts } from '../support/stage-ports.js';

function stack() {
  const s = stagePorts();
  const { clock, ports, ledger } = s;
  const infos = s.lines;
  /** One reconcile stage, as a tick runs it: its snapshot, then its plan carried out. */
  const run = async () => {
    const errors: TickError[] = [];
    const seen = await snapshot(ports, settings, errors);
    const result = await reconcile(ports, settings, seen, submitter(ports, settings, errors), errors);
    return { ...result, errors };
  };
  /** `n` CI jobs scheduled, and the tick's provisioning that makes their agents' Job. */
  const demand = async (n: number) => {
    const at = new Date(clock.now).toISOString();
    await ledger.apply(
      Array.from({ length: n }, (_, i) => jobEvent(`j${i}`, 'scheduled', { queue: 'q', occurredAt: at })),
      new Date(clock.now),
    );
    await provision(ports, settings);
  };
  return { ...s, infos, run, demand };
}

describe('reconcile', () => {
  it('returns the tokens of a Job whose agents all finished', async () => {
    const { clock, jobs, infos, limiter, run, demand } = stack();
    await demand(3);
    const job = jobs[0];
    if (!job) throw new Error('no Job');
    clock.now += 10_000;
    job.status = { succeeded: 3, conditions: [{ type: 'Complete', status: 'True' }] };
    infos.length = 0;
    const result = await run();
    expect(result.errors).toEqual([]);
    expect(result.released).toBe(3);
    expect(infos).toContainEqual({
      level: 'info',
      message: 'tokens returned',
      queue: 'q',
      jobName: job.metadata?.name,
      tokens: 3,
      why: 'job-finished',
    });
    const after = await limiter.snapshot();
    expect(after.dispatches).toEqual([]);
    expect(after.limiters.find((l) => l.queue === 'q')?.inFlight).toBe(0);
  });

  it('keeps the tokens of a Job whose agents are still running', async () => {
    const { clock, run, demand, limiter } = stack();
    await demand(2);
    clock.now += 10_000;
    const result = await run();
    expect(result.released).toBe(0);
    expect(result.views.get('q')).toMatchObject({ inFlight: 2, settled: true });
    expect((await limiter.snapshot()).dispatches.map((d) => d.tokens)).toEqual([2]);
  });

  it('creates again the Job of an intent whose create failed, within its lease', async () => {
    const { clock, jobs, creates, refuse, run, demand, limiter } = stack();
    refuse.next = 1;
    await demand(2);
    expect(jobs).toEqual([]);
    clock.now += 5_000;
    const result = await run();
    expect(result.errors).toEqual([]);
    expect(creates).toHaveLength(2);
    expect(creates[1]).toBe(creates[0]);
    expect(jobs.map((j) => j.metadata?.name)).toEqual([creates[0]]);
    expect((await limiter.snapshot()).dispatches.map((d) => d.status)).toEqual(['submitted']);
  });

  it('releases an intent past its lease that never became a Job, without creating it', async () => {
    const { clock, creates, refuse, infos, run, demand, limiter } = stack();
    refuse.next = 1;
    await demand(2);
    clock.now += 2 * settings.intentLeaseMs;
    const result = await run();
    expect(result.released).toBe(2);
    expect(creates).toHaveLength(1);
    expect(infos).toContainEqual(
      expect.objectContaining({ message: 'tokens returned', why: 'lease-expired', tokens: 2 }),
    );
    expect((await limiter.snapshot()).dispatches).toEqual([]);
  });

  it('reports a release that failed, keeps the tokens and leaves the queue unsettled', async () => {
    const { clock, jobs, run, demand, limiter } = stack();
    await demand(1);
    const job = jobs[0];
    if (!job) throw new Error('no Job');
    clock.now += 10_000;
    job.status = { succeeded: 1, conditions: [{ type: 'Complete', status: 'True' }] };
    limiter.failNext('release');
    const result = await run();
    expect(result.released).toBe(0);
    expect(result.errors).toEqual([
      {
        stage: 'reconcile',
        queue: 'q',
        retryable: true,
        cause: expect.any(Error),
        message: `reconcile ${job.metadata?.name}: Error: injected release failure`,
      },
    ]);
    expect(result.views.get('q')?.settled).toBe(false);
    expect((await limiter.snapshot()).dispatches).toHaveLength(1);
  });
});
