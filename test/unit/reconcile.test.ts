/**
 * The reconcile stage (functions/scaler/reconcile.ts: snapshot, then reconcile) on its own, over
 * the in-memory ledger and limiter and a cluster in memory. The dispatches it works on are made
 * by one provision() first, as a tick would have left them.
 */
import type { V1Job } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { jobFactory } from '../../functions/adapters/kubernetes/job-factory.js';
import { eventId, type JobEvent } from '../../functions/core/job-event.js';
import type { ScalerPorts } from '../../functions/scaler/ports.js';
import { reconcile, snapshot } from '../../functions/scaler/reconcile.js';
import { provision } from '../../functions/scaler/scaler.js';
import { submitter } from '../../functions/scaler/submit.js';
import { InMemoryLedgerStore } from '../../tools/fakes/memory/ledger-store.js';
import { InMemoryLimiterStore } from '../../tools/fakes/memory/limiter-store.js';

const template: V1Job = {
  apiVersion: 'batch/v1',
  kind: 'Job',
  spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'agent', image: 'agent' }] } } },
};
const settings = { queues: ['q'], limits: { q: { minAgents: 0, maxAgents: 10 } }, intentLeaseMs: 60_000 };

function scheduled(jobId: string, at: number): JobEvent {
  const iso = new Date(at).toISOString();
  return {
    id: eventId('buildkite', jobId, 'scheduled'),
    provider: 'buildkite',
    jobId,
    queue: 'q',
    kind: 'scheduled',
    occurredAt: iso,
    receivedAt: iso,
    trace: {},
  };
}

function stack() {
  const clock = { now: 1_800_000_000_000 };
  const jobs: V1Job[] = [];
  const creates: string[] = [];
  const refuse = { next: 0 };
  const infos: Record<string, unknown>[] = [];
  const ledger = new InMemoryLedgerStore();
  const limiter = new InMemoryLimiterStore();
  const ports: ScalerPorts = {
    events: { receive: async () => [], delete: async () => [] },
    ledger,
    limiter,
    cluster: {
      listAgentJobs: async () => structuredClone(jobs),
      createJob: async (job) => {
        creates.push(job.metadata?.name ?? '');
        if (refuse.next > 0) {
          refuse.next--;
          throw Object.assign(new Error('Internal Server Error'), { code: 500 });
        }
        jobs.push(structuredClone(job));
        return 'created';
      },
    },
    jobs: jobFactory({
      namespace: 'ci',
      ttlSecondsAfterFinished: 600,
      activeDeadlineSeconds: 600,
      templateFor: () => template,
    }),
    log: { debug() {}, info: (message, extra) => infos.push({ message, ...extra }), warn() {}, error() {} },
    now: () => clock.now,
  };
  /** One reconcile stage, as a tick runs it: its snapshot, then its plan carried out. */
  const run = async () => {
    const errors: string[] = [];
    const seen = await snapshot(ports, settings, errors);
    const result = await reconcile(ports, settings, seen, submitter(ports, settings, errors), errors);
    return { ...result, errors };
  };
  const demand = async (n: number) => {
    await ledger.apply(
      Array.from({ length: n }, (_, i) => scheduled(`j${i}`, clock.now)),
      new Date(clock.now),
    );
    await provision(ports, settings);
  };
  return { clock, jobs, creates, refuse, infos, limiter, run, demand };
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
    expect(result.errors).toEqual([`reconcile ${job.metadata?.name}: Error: injected release failure`]);
    expect(result.views.get('q')?.settled).toBe(false);
    expect((await limiter.snapshot()).dispatches).toHaveLength(1);
  });
});
