/**
 * The overshoot `npm run demo` showed (issue 12): agents that exit quickly, and `finished`
 * webhooks still on their way, made the scaler ask for agents that CI jobs did not need. Forced
 * step by step through the real provision() over the in-memory stores.
 */
import type { V1Job } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { jobFactory } from '../../functions/adapters/kubernetes/job-factory.js';
import { ExitedAgents } from '../../functions/core/decision.js';
import { eventId, type JobEvent, type JobEventKind } from '../../functions/core/job-event.js';
import { drain } from '../../functions/scaler/drain.js';
import type { ClusterPort, EventSource, ReceivedEvent, ScalerLog, ScalerPorts } from '../../functions/scaler/ports.js';
import { provision, tick } from '../../functions/scaler/scaler.js';
import { InMemoryLedgerStore } from '../../tools/fakes/memory/ledger-store.js';
import { InMemoryLimiterStore } from '../../tools/fakes/memory/limiter-store.js';

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

/** An events queue in memory: what `send` puts in, the drain receives (sent at `now()`). */
function eventsQueue(now: () => number): EventSource & { send(events: JobEvent[]): void } {
  const waiting: ReceivedEvent[] = [];
  let n = 0;
  return {
    send(events) {
      for (const event of events) {
        n++;
        waiting.push({ receiptHandle: `r${n}`, messageId: `m${n}`, receiveCount: 1, sentAt: now(), event });
      }
    },
    receive: async ({ max }) => waiting.splice(0, max),
    delete: async () => [],
  };
}

describe('events that lag behind the agents (issue 19)', () => {
  function stack() {
    const clock = { now: 1_800_000_000_000 };
    const jobs: V1Job[] = [];
    const made = { agents: 0 };
    const decisions: Record<string, unknown>[] = [];
    const log: ScalerLog = {
      ...quiet,
      info: (message, extra) => {
        if (message === 'scaling decision') decisions.push(extra);
      },
    };
    const queue = eventsQueue(() => clock.now);
    const ports: ScalerPorts = {
      events: queue,
      ledger: new InMemoryLedgerStore(),
      limiter: new InMemoryLimiterStore(),
      cluster: {
        listAgentJobs: async () => structuredClone(jobs),
        createJob: async (job) => {
          jobs.push(structuredClone(job));
          made.agents += job.spec?.completions ?? 0;
          return 'created';
        },
      },
      jobs: factory,
      log,
      now: () => clock.now,
      exited: new ExitedAgents(),
    };
    const run = (drainBudgetMs?: number) =>
      tick(ports, settings, {
        waitSeconds: 0,
        deadline: clock.now + 60_000,
        ...(drainBudgetMs === undefined ? {} : { drainBudgetMs }),
      });
    /** The agents of the first `n` Jobs ran their CI jobs and exited. */
    const exit = (n: number) => {
      for (const job of jobs.slice(0, n))
        job.status = { succeeded: job.spec?.completions ?? 0, conditions: [{ type: 'Complete', status: 'True' }] };
    };
    return { clock, jobs, made, decisions, queue, run, exit };
  }

  it('an agent that ran its CI job and exited before the started and finished events were applied is not made again', async () => {
    const { clock, made, decisions, queue, run, exit } = stack();
    const t0 = clock.now;
    const first = ['a', 'b', 'c', 'd'];
    queue.send(first.map((id) => event(id, 'scheduled', t0)));
    await run();
    expect(made.agents).toBe(4);

    // The agents take the CI jobs at t0 + 1 s, run them and exit by t0 + 11 s. Meanwhile the
    // events queue has a backlog (a throttled table, a slow scaler): 30 events of another queue
    // sent from t0 + 2 s, then these CI jobs' started and finished, sent at t0 + 11 s.
    for (let i = 0; i < 30; i++) {
      clock.now = t0 + 2_000 + i * 100;
      queue.send([{ ...event(`x${i}`, 'scheduled', clock.now), queue: 'other' }]);
    }
    clock.now = t0 + 11_000;
    queue.send([
      ...first.map((id) => event(id, 'started', t0 + 1_000)),
      ...first.map((id) => event(id, 'finished', t0 + 11_000)),
    ]);
    clock.now = t0 + 12_000;
    exit(1);
    // Each tick drains one batch (a drain budget of 0): the backlog takes three ticks.
    for (let i = 0; i < 3; i++) {
      await run(0);
      expect(made.agents).toBe(4);
      clock.now += 2_000;
    }
    expect(decisions.at(-1)).toMatchObject({ pending: 4, supply: 0, exited: 4, gone: 4, count: 0, lagMs: 11_100 });

    // The late events are applied, and a new CI job: it gets its agent, the old ones none.
    queue.send([event('e', 'scheduled', clock.now)]);
    await run();
    expect(made.agents).toBe(5);
    expect(decisions.at(-1)).toMatchObject({ pending: 1, exited: 0, count: 1, lagMs: 0, appliedAgeMs: 7_000 });
  });

  it('measures the lag: the age of the oldest event left in the queue when the drain ends on its budget', async () => {
    const t0 = 1_800_000_000_000;
    let now = t0;
    const waiting: ReceivedEvent[] = Array.from({ length: 25 }, (_, i) => ({
      receiptHandle: `r${i}`,
      messageId: `m${i}`,
      receiveCount: 1,
      sentAt: t0 + i * 100,
      event: event(`j${i}`, 'scheduled', t0 + i * 100),
    }));
    const ports: ScalerPorts = {
      events: { receive: async ({ max }) => waiting.splice(0, max), delete: async () => [] },
      ledger: new InMemoryLedgerStore(),
      limiter: new InMemoryLimiterStore(),
      cluster: { listAgentJobs: async () => [], createJob: async () => 'created' },
      jobs: factory,
      log: quiet,
      now: () => now,
    };
    now = t0 + 5_000;
    // A budget of 0: one batch, then the drain stops with 15 events still waiting.
    const report = await drain(ports, settings, 0, now + 60_000, 0);
    expect(report).toMatchObject({ applied: 10, backlog: true, appliedAgeMs: 5_000 });
    // The next event waiting was sent after the newest received (t0 + 900 ms): at most 4.1 s old.
    expect(report.lagMs).toBe(4_100);
    expect(waiting).toHaveLength(15);
    // Drained to the end: nothing known waiting.
    const rest = await drain(ports, settings, 0, now + 60_000, 60_000);
    expect(rest).toMatchObject({ applied: 15, backlog: false, lagMs: 0 });
  });

  it('an agent that left without a CI job delays the next agent only until later events are applied', async () => {
    const { clock, made, queue, run, exit } = stack();
    const t0 = clock.now;
    queue.send([event('a', 'scheduled', t0)]);
    await run();
    expect(made.agents).toBe(1);
    // Its agent exits at once without taking the CI job (it is still pending, and really so).
    clock.now = t0 + 3_000;
    exit(1);
    await run();
    expect(made.agents).toBe(1);
    // A CI job that happened after the exit, and whatever was before it, is applied: the exit
    // was no CI job's, and both CI jobs get an agent.
    clock.now = t0 + 9_000;
    queue.send([event('b', 'scheduled', clock.now)]);
    await run();
    expect(made.agents).toBe(3);
  });
});
