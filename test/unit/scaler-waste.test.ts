/**
 * The overshoot `npm run demo` showed (issue 12): agents that exit quickly, and `finished`
 * webhooks still on their way, made the scaler ask for agents that CI jobs did not need. Forced
 * step by step through the real provision() over the in-memory stores.
 */
import type { V1Job } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { InMemoryLedgerStore } from '../../functions/adapters/memory/ledger-store.js';
import { InMemoryLimiterStore } from '../../functions/adapters/memory/limiter-store.js';
import { eventId, type JobEvent, type JobEventKind } from '../../functions/core/job-event.js';
import { jobFactory } from '../../functions/scaler/ports.js';
import { type ClusterPort, provision, type ScalerPorts } from '../../functions/scaler/scaler.js';

const template: V1Job = {
  apiVersion: 'batch/v1',
  kind: 'Job',
  spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'agent', image: 'agent' }] } } },
};
const factory = jobFactory({
  namespace: 'ci',
  ttlSecondsAfterFinished: 600,
  activeDeadlineSeconds: 600,
  templateFor: () => template,
});
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const settings = { queues: ['q'], limits: { q: { minAgents: 0, maxAgents: 10 } }, intentLeaseMs: 60_000 };

function event(jobId: string, kind: JobEventKind, at: number): JobEvent {
  const iso = new Date(at).toISOString();
  return {
    id: eventId('buildkite', jobId, kind),
    provider: 'buildkite',
    jobId,
    queue: 'q',
    kind,
    occurredAt: iso,
    receivedAt: iso,
    trace: {},
  };
}

describe('quick agents and late finished webhooks', () => {
  it('a CI job whose agent already exited does not hide a new agent as busy: one agent per CI job', async () => {
    let now = 1_800_000_000_000;
    const jobs: V1Job[] = [];
    let created = 0;
    const cluster: ClusterPort = {
      listAgentJobs: async () => structuredClone(jobs),
      createJob: async (job) => {
        jobs.push(structuredClone(job));
        created += job.spec?.completions ?? 0;
        return 'created';
      },
    };
    const ledger = new InMemoryLedgerStore();
    const limiter = new InMemoryLimiterStore();
    const ports: ScalerPorts = {
      events: { receive: async () => [], delete: async () => [] },
      ledger,
      limiter,
      cluster,
      jobs: factory,
      log: quiet,
      now: () => now,
    };
    const first = ['a', 'b', 'c', 'd'];
    await ledger.apply(
      first.map((id) => event(id, 'scheduled', now)),
      new Date(now),
    );
    await provision(ports, settings);
    expect(created).toBe(4);

    // The agents start and take the 4 CI jobs; the jobs take 5 s and the agents exit at once.
    now += 2_000;
    await ledger.apply(
      first.map((id) => event(id, 'started', now)),
      new Date(now),
    );
    now += 6_000;
    const job = jobs[0];
    if (!job) throw new Error('no Job');
    job.status = { succeeded: 4, conditions: [{ type: 'Complete', status: 'True' }] };
    // 4 more CI jobs arrive; the 4 `finished` webhooks are still on their way.
    const second = ['e', 'f', 'g', 'h'];
    await ledger.apply(
      second.map((id) => event(id, 'scheduled', now)),
      new Date(now),
    );
    await provision(ports, settings);
    expect(created).toBe(8);

    // The next ticks, before the new agents are up and before the late `finished` arrive.
    for (let i = 0; i < 3; i++) {
      now += 2_000;
      await provision(ports, settings);
    }
    expect(created).toBe(8);
  });

  it("a GitHub job's started_at (the time it was queued) does not make its busy agent look idle", async () => {
    let now = 1_800_000_000_000;
    const jobs: V1Job[] = [];
    let created = 0;
    const cluster: ClusterPort = {
      listAgentJobs: async () => structuredClone(jobs),
      createJob: async (job) => {
        jobs.push(structuredClone(job));
        created += job.spec?.completions ?? 0;
        return 'created';
      },
    };
    const ledger = new InMemoryLedgerStore();
    const ports: ScalerPorts = {
      events: { receive: async () => [], delete: async () => [] },
      ledger,
      limiter: new InMemoryLimiterStore(),
      cluster,
      jobs: factory,
      log: quiet,
      now: () => now,
    };
    const queuedAt = now;
    // The scaler makes its agent a few seconds after the job was queued.
    now += 5_000;
    await ledger.apply([event('a', 'scheduled', queuedAt)], new Date(now));
    await provision(ports, settings);
    expect(created).toBe(1);
    // Its agent takes it; GitHub's in_progress event still carries started_at = when it was queued.
    now += 10_000;
    await ledger.apply(
      [{ ...event('a', 'started', queuedAt), receivedAt: new Date(now).toISOString() }],
      new Date(now),
    );
    // A second CI job arrives: the only agent is busy, so it needs one of its own.
    now += 1_000;
    await ledger.apply([event('b', 'scheduled', now)], new Date(now));
    await provision(ports, settings);
    expect(created).toBe(2);
  });
});
