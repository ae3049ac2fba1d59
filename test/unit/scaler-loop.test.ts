import type { V1Job } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { jobFactory } from '../../functions/adapters/kubernetes/job-factory.js';
import { eventId, type JobEvent, type QueuedJobEvent } from '../../functions/core/job-event.js';
import { WarmPoolTracker } from '../../functions/core/warm-pool.js';
import { JOBS_PER_TICK, MAX_TICK_SPACING_MS, run, tickSpacingMs } from '../../functions/scaler/loop.js';
import type { EventSource, ScalerPorts } from '../../functions/scaler/ports.js';
import { tick } from '../../functions/scaler/scaler.js';
import { InMemoryLedgerStore } from '../../tools/fakes/memory/ledger-store.js';
import { InMemoryLimiterStore } from '../../tools/fakes/memory/limiter-store.js';
import { asMessages, jobEvent } from '../support/job-events.js';

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
      return asMessages(batch);
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
    // MAX 1: one agent; the other job keeps waiting, so the scaler looks again every 2 s (the
    // last poll shortened to what is left after the first tick's pause, tickSpacingMs).
    expect(w.jobs).toHaveLength(1);
    expect(w.waits.filter((s) => s > 0)).toEqual([2, 2, 2, 2, 1]);
  });
});

/**
 * Events that arrive over time: a receive returns those already queued, or long-polls until the
 * next one arrives (virtual clock). Counts the ticks that provisioned (one cluster list each).
 */
function stream(arrivals: { atMs: number; event: QueuedJobEvent }[]) {
  const w = world([]);
  const queued = [...arrivals].sort((a, b) => a.atMs - b.atMs);
  let now = 0;
  const provisionedAt: number[] = [];
  /** When each agent's Job was created (virtual ms), in order. */
  const agentAt: number[] = [];
  const start = w.ports.now();
  const ports: ScalerPorts = {
    ...w.ports,
    now: () => start + now,
    sleep: async (ms) => {
      now += ms;
    },
    events: {
      ...w.ports.events,
      async receive({ waitSeconds }) {
        const next = queued[0];
        if (!next || next.atMs > now + waitSeconds * 1000) {
          now += waitSeconds * 1000;
          return [];
        }
        now = Math.max(now, next.atMs);
        const batch = queued.filter((a) => a.atMs <= now).slice(0, 10);
        queued.splice(0, batch.length);
        return batch.map(({ event }) => ({ receiptHandle: event.id, messageId: event.id, receiveCount: 1, event }));
      },
    },
    cluster: {
      ...w.ports.cluster,
      listAgentJobs: () => {
        provisionedAt.push(now);
        return w.ports.cluster.listAgentJobs();
      },
      createJob: (job) => {
        for (let i = 0; i < (job.spec?.parallelism ?? 0); i++) agentAt.push(now);
        // As the API server does; its pods never become ready in this world.
        return w.ports.cluster.createJob({
          ...job,
          metadata: { ...job.metadata, creationTimestamp: new Date(start + now) },
        });
      },
    },
  };
  return { ports, jobs: w.jobs, provisionedAt, agentAt };
}

describe('scaler loop under a trickle of events', () => {
  const wide = { ...settings, limits: { default: { minAgents: 0, maxAgents: 100 } } };

  it('gathers a steady trickle into ticks of JOBS_PER_TICK CI jobs each, every job still served', async () => {
    // 50 CI jobs scheduled 20 ms apart: back to back, that would be 50 ticks of one event each.
    const s = stream(Array.from({ length: 50 }, (_, i) => ({ atMs: 1 + i * 20, event: scheduled(`job-${i}`) })));
    const reports = await run(s.ports, wide, { budgetMs: 5_000, pollSeconds: 20 });
    expect(s.jobs.reduce((n, j) => n + (j.spec?.parallelism ?? 0), 0)).toBe(50);
    const carried = reports.filter((r) => r.drain.received > 0).map((r) => r.drain.received);
    expect(carried.length).toBeLessThanOrEqual(16);
    expect(carried.toSorted((a, b) => a - b)[Math.floor(carried.length / 2)]).toBe(JOBS_PER_TICK);
    // The k-th agent is the k-th job's: none waited more than MAX_TICK_SPACING_MS for its Job.
    const waited = s.agentAt.map((at, k) => at - (1 + k * 20));
    expect(Math.max(...waited)).toBeLessThanOrEqual(MAX_TICK_SPACING_MS);
    expect(Math.min(...waited)).toBeGreaterThanOrEqual(0);
  });

  it('provisions for started or finished events alone not at once but within the 2 s re-tick', async () => {
    const started = (id: string) => jobEvent(id, 'started', { provider: 'github', queue: 'default' });
    const finished = (id: string) => jobEvent(id, 'finished', { provider: 'github', queue: 'default' });
    const s = stream([
      { atMs: 1, event: scheduled('a') },
      { atMs: 500, event: started('a') },
      { atMs: 5_000, event: finished('a') },
      { atMs: 30_000, event: scheduled('b') },
    ]);
    await run(s.ports, wide, { budgetMs: 40_000, pollSeconds: 20 });
    // At the start and at once for each `scheduled` (1 ms, 30 s). `started` (0.5 s) waits for the
    // re-tick due 2 s after the last provisioning (a job was pending), `finished` (5 s) for one
    // 2 s after it, give or take half a second: the long poll waits whole seconds. Then every
    // 20 s with nothing waiting; in this world a's agent stays (idle after a finished) and b is
    // left waiting, so from 30 s on it re-ticks every 2 s.
    expect(s.provisionedAt.slice(0, 7)).toEqual([0, 1, 2_500, 7_000, 27_000, 30_000, 32_000]);
    expect(s.jobs).toHaveLength(1);
  });

  it('provisions at once for a `scheduled` event the ledger already had (redelivered after a crash)', async () => {
    const a = scheduled('a');
    const s = stream([{ atMs: 1_000, event: a }]);
    const receive = s.ports.events.receive.bind(s.ports.events);
    const ports: ScalerPorts = {
      ...s.ports,
      events: {
        ...s.ports.events,
        // An invocation applied it, then died before provisioning; SQS delivers it again.
        receive: async (o) => {
          const batch = await receive(o);
          if (batch.length > 0) await s.ports.ledger.apply([a], new Date(s.ports.now()));
          return batch;
        },
      },
    };
    const reports = await run(ports, wide, { budgetMs: 5_000, pollSeconds: 20 });
    expect(reports.some((r) => r.drain.duplicates === 1)).toBe(true);
    expect(s.provisionedAt.slice(0, 2)).toEqual([0, 1_000]);
    expect(s.jobs).toHaveLength(1);
  });

  it('with the warm pool on, looks every 2 s while its agents start, to time their start-up', async () => {
    const at = new Date(1_000_000).toISOString();
    const a = jobEvent('a', 'scheduled', { provider: 'github', queue: 'default', occurredAt: at });
    const s = stream([
      { atMs: 1, event: a },
      { atMs: 500, event: jobEvent('a', 'started', { provider: 'github', queue: 'default', occurredAt: at }) },
    ]);
    const ports: ScalerPorts = { ...s.ports, warmPool: new WarmPoolTracker({ startupPriorSeconds: 30 }) };
    await run(ports, wide, { budgetMs: 12_000, pollSeconds: 20 });
    // Nothing pending after 0.5 s, yet the warm agents have no pod ready: every 2 s, not every 20.
    expect(s.provisionedAt.slice(0, 7)).toEqual([0, 1, 2_500, 4_500, 6_500, 8_500, 10_500]);
  });
});

describe('tick spacing (tickSpacingMs)', () => {
  const ticks = (perSecond: number, seconds: number) =>
    Array.from({ length: seconds * 10 }, (_, i) => ({ at: i * 100, scheduled: perSecond / 10 }));

  it('spaces ticks so that each carries JOBS_PER_TICK CI jobs at the recent arrival rate', () => {
    // Within 10 %: the window starts at a tick, whose own CI jobs arrived before it.
    for (const perSecond of [200, 20]) {
      const ratio = tickSpacingMs(ticks(perSecond, 3), 3_000) / ((1000 * JOBS_PER_TICK) / perSecond);
      expect(ratio).toBeGreaterThanOrEqual(0.9);
      expect(ratio).toBeLessThanOrEqual(1.1);
    }
  });

  it('never spaces them more than MAX_TICK_SPACING_MS: a trickle, or ticks with no `scheduled` event', () => {
    expect(tickSpacingMs(ticks(5, 3), 3_000)).toBe(MAX_TICK_SPACING_MS);
    expect(tickSpacingMs(ticks(0, 3), 3_000)).toBe(MAX_TICK_SPACING_MS);
    expect(tickSpacingMs([], 3_000)).toBe(MAX_TICK_SPACING_MS);
  });

  it('measures the rate over the last two seconds only', () => {
    const burstThenQuiet = [...ticks(200, 1), { at: 2_500, scheduled: 0 }, { at: 3_500, scheduled: 1 }];
    expect(tickSpacingMs(burstThenQuiet, 4_000)).toBe(MAX_TICK_SPACING_MS);
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
    const drained = await tick(trickle.ports, wide, { waitSeconds: 0, deadline: trickle.ports.now() + 60_000 });
    expect(trickle.sizes).toEqual([3]); // no empty receive after a batch that was not full
    expect(drained.drain.backlog).toBe(false);
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
    expect(first!.drain.backlog).toBe(true); // so the next tick starts without a pause
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
    const report = await tick({ ...w.ports, events, routers: { gitlab: router } }, wide, {
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
