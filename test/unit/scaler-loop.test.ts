import type { V1Job } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { jobFactory } from '../../functions/adapters/kubernetes/job-factory.js';
import { InMemoryLedgerStore } from '../../functions/adapters/memory/ledger-store.js';
import { InMemoryLimiterStore } from '../../functions/adapters/memory/limiter-store.js';
import { eventId, type JobEvent, type QueuedJobEvent } from '../../functions/core/job-event.js';
import { run } from '../../functions/scaler/loop.js';
import type { EventSource, ScalerPorts } from '../../functions/scaler/ports.js';
import { tick } from '../../functions/scaler/scaler.js';
import { jobEvent } from '../support/job-events.js';

const template: V1Job = {
  apiVersion: 'batch/v1',
  kind: 'Job',
  spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'agent', image: 'agent' }] } } },
};

/** A virtual clock: a receive with a wait moves time on by that wait. */
function world(pending: QueuedJobEvent[], msPerBatch = 0) {
  let now = 1_000_000;
  const waits: number[] = [];
  const jobs: V1Job[] = [];
  const events: EventSource = {
    async receive({ waitSeconds }) {
      const batch = pending.splice(0, 10);
      now += batch.length > 0 ? msPerBatch : 0;
      if (batch.length === 0) {
        waits.push(waitSeconds);
        now += waitSeconds * 1000;
      }
      return batch.map((event, i) => ({
        receiptHandle: `${event.id}-${i}`,
        messageId: event.id,
        receiveCount: 1,
        event,
      }));
    },
    delete: async () => [],
  };
  const ports: ScalerPorts = {
    events,
    ledger: new InMemoryLedgerStore(),
    limiter: new InMemoryLimiterStore(),
    cluster: {
      listAgentJobs: async () => jobs,
      createJob: async (job) => {
        jobs.push(job);
        return 'created';
      },
    },
    jobs: jobFactory({
      namespace: 'ci',
      ttlSecondsAfterFinished: 60,
      activeDeadlineSeconds: 600,
      templateFor: () => template,
    }),
    log: { debug() {}, info() {}, warn() {}, error() {} },
    now: () => now,
    sleep: async (ms) => {
      now += ms;
    },
  };
  return { ports, waits, jobs };
}

const settings = { queues: ['default'], limits: { default: { minAgents: 0, maxAgents: 1 } }, intentLeaseMs: 60_000 };

function scheduled(jobId: string): JobEvent {
  return jobEvent(jobId, 'scheduled', { provider: 'github', queue: 'default', occurredAt: new Date(0).toISOString() });
}

describe('scaler loop within one invocation', () => {
  it('long-polls for the configured time when nothing waits, and uses the whole budget', async () => {
    const w = world([]);
    const reports = await run(w.ports, settings, { budgetMs: 58_000, pollSeconds: 20 });
    // First tick at once, then 20 s polls, the last one shortened to what is left.
    expect(w.waits).toEqual([0, 20, 20, 18]);
    expect(reports).toHaveLength(4);
  });

  it('re-ticks every 2 s while CI jobs wait for an agent (an exiting agent is seen promptly)', async () => {
    const w = world([scheduled('a'), scheduled('b')]);
    await run(w.ports, settings, { budgetMs: 10_000, pollSeconds: 20 });
    // MAX 1: one agent; the other job keeps waiting, so the scaler looks again every 2 s.
    expect(w.jobs).toHaveLength(1);
    expect(w.waits.filter((s) => s > 0)).toEqual([2, 2, 2, 2, 2]);
  });
});

describe('scaler loop when a tick fails', () => {
  it('keeps ticking after a failed tick and returns what succeeded', async () => {
    const w = world([scheduled('a')]);
    let calls = 0;
    const list = w.ports.cluster.listAgentJobs;
    const flaky: ScalerPorts = {
      ...w.ports,
      cluster: {
        ...w.ports.cluster,
        listAgentJobs: () => (++calls === 1 ? Promise.reject(new Error('503 from the API server')) : list()),
      },
    };
    const reports = await run(flaky, settings, { budgetMs: 3_000, pollSeconds: 1 });
    expect(reports.length).toBeGreaterThan(0);
    expect(w.jobs).toHaveLength(1);
  });

  it('fails the invocation when no tick succeeded, so the error alarm fires', async () => {
    const w = world([]);
    const down: ScalerPorts = {
      ...w.ports,
      cluster: { ...w.ports.cluster, listAgentJobs: () => Promise.reject(new Error('cluster unreachable')) },
    };
    await expect(run(down, settings, { budgetMs: 2_000, pollSeconds: 1 })).rejects.toThrow('cluster unreachable');
  });
});

describe('draining within one tick', () => {
  const many = (n: number) => Array.from({ length: n }, (_, i) => scheduled(`job-${i}`));
  const wide = { ...settings, limits: { default: { minAgents: 0, maxAgents: 100 } } };

  it('stops receiving when no event of a batch could be applied (the ledger is down), leaving the rest queued', async () => {
    const queued = many(50);
    const w = world(queued);
    (w.ports.ledger as InMemoryLedgerStore).failWith = () => 'ProvisionedThroughputExceededException';
    const report = await tick(w.ports, wide, { waitSeconds: 0, deadline: w.ports.now() + 60_000 });
    expect(report.drain).toMatchObject({ received: 10, failed: 10, applied: 0 });
    expect(queued).toHaveLength(40);
  });

  it('provisions for what it drained once its drain budget is spent, and drains the rest next tick', async () => {
    const queued = many(60);
    const w = world(queued, 1_000); // each receive takes a second
    const first = await tick(
      w.ports,
      { ...wide, drainBudgetMs: 2_000 },
      { waitSeconds: 0, deadline: w.ports.now() + 60_000 },
    );
    expect(first.drain.received).toBeLessThan(60);
    expect(first.decisions[0]!.count).toBe(first.drain.received);
    const second = await tick(
      w.ports,
      { ...wide, drainBudgetMs: 2_000 },
      { waitSeconds: 0, deadline: w.ports.now() + 60_000 },
    );
    expect(first.drain.received + second.drain.received).toBeLessThanOrEqual(60);
    expect(second.drain.received).toBeGreaterThan(0);
  });

  it('adds drainers only while receives come back full: a trickle costs one receive, a backlog gets them all', async () => {
    const counted = (queued: QueuedJobEvent[]) => {
      const w = world(queued);
      const sizes: number[] = [];
      const ports: ScalerPorts = {
        ...w.ports,
        events: {
          ...w.ports.events,
          receive: async (o) => {
            const batch = await w.ports.events.receive(o);
            sizes.push(batch.length);
            return batch;
          },
        },
      };
      return { ports, sizes };
    };
    const trickle = counted(many(3));
    await tick(trickle.ports, wide, { waitSeconds: 0, deadline: trickle.ports.now() + 60_000 });
    expect(trickle.sizes).toEqual([3]); // no empty receive after a batch that was not full
    const backlog = counted(many(95));
    const report = await tick(backlog.ports, wide, { waitSeconds: 0, deadline: backlog.ports.now() + 60_000 });
    expect(report.drain.received).toBe(95);
    expect(backlog.sizes.filter((n) => n === 0).length).toBeLessThanOrEqual(3);
  });

  it('under a steady stream drains briefly before provisioning, and twice as long as provisioning took', async () => {
    // The queue never empties (2,000 events, each receive takes 50 ms); listing the cluster takes 400 ms.
    const w = world(many(2_000), 50);
    const slow: ScalerPorts = {
      ...w.ports,
      cluster: {
        ...w.ports.cluster,
        listAgentJobs: async () => {
          await w.ports.sleep?.(400);
          return w.ports.cluster.listAgentJobs();
        },
      },
    };
    const huge = { ...settings, limits: { default: { minAgents: 0, maxAgents: 10_000 } } };
    const reports = await run(slow, huge, { budgetMs: 10_000, pollSeconds: 1 });
    const [first, second] = reports;
    // First tick: a 150 ms drain (a few receives), not the 5 s maximum (100 receives).
    expect(first!.drain.received).toBeLessThanOrEqual(80);
    expect(first!.decisions[0]!.count).toBe(first!.drain.received);
    expect(first!.provisionMs).toBeGreaterThanOrEqual(400);
    // Next: 2 x 400 ms of draining, so provisioning stays a third of the time.
    expect(second!.drain.received).toBeGreaterThan(first!.drain.received * 3);
    expect(second!.drain.received).toBeLessThanOrEqual(250);
  });

  it('routes GitLab events through the router: unserved ones are deleted and counted nowhere, unknown ones wait hidden', async () => {
    const gitlab = (jobId: string): QueuedJobEvent => ({
      ...scheduled(jobId),
      id: eventId('gitlab', jobId, 'scheduled'),
      provider: 'gitlab',
      queue: undefined,
      gitlabProjectId: '380',
    });
    const w = world([scheduled('bk-1'), gitlab('1'), gitlab('2'), gitlab('3')]);
    const deleted: string[] = [];
    const deferred: [string, number][] = [];
    const events = {
      ...w.ports.events,
      delete: async (handles: readonly string[]) => {
        deleted.push(...handles);
        return [];
      },
      defer: async (handle: string, seconds: number) => void deferred.push([handle, seconds]),
    };
    const router = {
      resolve: async (batch: readonly QueuedJobEvent[]) =>
        batch.map((e) =>
          e.queue !== undefined
            ? { event: { ...e, queue: e.queue } }
            : e.jobId === '1'
              ? { event: { ...e, queue: 'default' } }
              : e.jobId === '2'
                ? { ignored: 'tags ["gpu"]: no queue\'s agents can take it' }
                : { failed: 'job tags lookup failed: HTTP 429', retryAfterMs: 30_000 },
        ),
    };
    const report = await tick({ ...w.ports, events, router }, wide, {
      waitSeconds: 0,
      deadline: w.ports.now() + 60_000,
    });
    expect(report.drain).toMatchObject({ received: 4, applied: 2, unserved: 1, failed: 1 });
    expect(report.decisions[0]).toMatchObject({ pending: 2 });
    // The unserved job's message is gone; the unknown one stays, hidden until the API may be asked.
    expect(deleted.sort()).toEqual(
      [
        `${eventId('github', 'bk-1', 'scheduled')}-0`,
        `${eventId('gitlab', '1', 'scheduled')}-1`,
        `${eventId('gitlab', '2', 'scheduled')}-2`,
      ].sort(),
    );
    expect(deferred).toEqual([[`${eventId('gitlab', '3', 'scheduled')}-3`, 30]]);
    // Without a router, an event without a queue is never counted and never deleted.
    const alone = world([gitlab('4')]);
    const none = await tick(alone.ports, wide, { waitSeconds: 0, deadline: alone.ports.now() + 60_000 });
    expect(none.drain).toMatchObject({ received: 1, failed: 1, applied: 0 });
  });
});
