/**
 * The scaler against real protocols: DynamoDB Local, fauxqs (SQS) and the fake Kubernetes API
 * server, through the real adapters and the real @kubernetes/client-node. Each test gets its own
 * table, queue and namespace state.
 */

import type { V1Job } from '@kubernetes/client-node';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DynamoLimiterStore } from '../../functions/adapters/dynamodb/limiter-store.js';
import { createEventsQueue } from '../../functions/adapters/sqs/events-queue.js';
import { ExitedAgents } from '../../functions/core/decision.js';
import type { JobEventKind } from '../../functions/core/job-event.js';
import { WarmPoolTracker } from '../../functions/core/warm-pool.js';
import type { ScalerLog, ScalerPorts, ScalerSettings } from '../../functions/scaler/ports.js';
import { provision, tick } from '../../functions/scaler/scaler.js';
import { createPorts, scalerSettings } from '../../functions/scaler/wiring.js';
import { resetAwsClients } from '../../functions/shared/aws.js';
import { loadScalerConfig, type ScalerConfig } from '../../functions/shared/config.js';
import { type FakeKube, startFakeKube } from '../../tools/fakes/kube/index.js';
import { assertRbacCovers, roleWithout, scalerRole } from '../deploy/rbac.js';
import { createLedgerTable, type DynamoDbLocal, startDynamoDbLocal, useDynamoDbLocal } from '../support/dynamodb.js';
import { jobEvent } from '../support/job-events.js';
import { type SqsHarness, startSqs, type TestQueue } from '../support/sqs.js';

/** A warm pool whose target the test sets, as the tracker would size it from arrivals and start-ups. */
class PinnedPool extends WarmPoolTracker {
  constructor(public warm: number) {
    super();
  }
  override size(queue: string, now: number) {
    return { ...super.size(queue, now), warm: this.warm };
  }
}

let dynamo: DynamoDbLocal;
let sqs: SqsHarness;
let kube: FakeKube;
let n = 0;

const quiet: ScalerLog = { debug() {}, info() {}, warn() {}, error() {} };
/** The tests read the tick reports, not EMF metric lines. */
const withoutMetrics = ({ metrics: _metrics, ...ports }: ScalerPorts): ScalerPorts => ports;

beforeAll(async () => {
  [dynamo, sqs, kube] = await Promise.all([startDynamoDbLocal(), startSqs(), startFakeKube()]);
  useDynamoDbLocal(dynamo.endpoint);
  sqs.useEnv();
  resetAwsClients();
});

afterAll(async () => {
  resetAwsClients();
  await Promise.all([dynamo?.stop(), sqs?.stop(), kube?.stop()]);
});

interface World {
  config: ScalerConfig;
  settings: ScalerSettings;
  queue: TestQueue;
  ports: ScalerPorts;
  send(jobId: string, kind: JobEventKind, queue?: string): Promise<void>;
  tick(): ReturnType<typeof tick>;
  limiter(): Promise<{ inFlight: number; version: number }>;
  agentJobs(): V1Job[];
  agents(): number;
}

async function world(env: Record<string, string> = {}, visibilityTimeoutSeconds = 30): Promise<World> {
  n++;
  const table = `ledger-${n}`;
  const queue = await sqs.createQueue(`events-${n}`, { maxReceiveCount: 2, visibilityTimeoutSeconds });
  await createLedgerTable(dynamo.endpoint, table);
  const config = loadScalerConfig({
    EVENTS_QUEUE_URL: queue.url,
    LEDGER_TABLE: table,
    KUBECONFIG: kube.kubeconfigPath,
    MAX_AGENTS: '10',
    KUBE_NAMESPACE: `ci-${n}`,
    ...env,
  });
  const ports = withoutMetrics(await createPorts(config, quiet));
  const settings = scalerSettings(config);
  const events = createEventsQueue(queue.url);
  const limiterStore = new DynamoLimiterStore({ tableName: table });
  return {
    config,
    settings,
    queue,
    ports,
    async send(jobId, kind, q = 'default') {
      await events.sendEvent(jobEvent(jobId, kind, { queue: q, trace: { pipeline: 'app' } }));
    },
    tick() {
      return tick(ports, settings, { waitSeconds: 0, deadline: Date.now() + 20_000 });
    },
    async limiter() {
      const s = await limiterStore.snapshot();
      const l = s.limiters.find((x) => x.queue === 'default');
      return { inFlight: l?.inFlight ?? 0, version: l?.version ?? 0 };
    },
    agentJobs: () => kube.jobs(config.namespace),
    agents: () => kube.jobs(config.namespace).reduce((sum, j) => sum + (j.spec?.parallelism ?? 0), 0),
  };
}

/** Every Kubernetes call the scaler made, for the RBAC check at the end. */
const recorded: FakeKube['calls'] = [];
beforeEach(() => {
  recorded.push(...kube.calls);
  kube.reset();
});

describe('scaler against DynamoDB Local, fauxqs and a fake Kubernetes API', () => {
  it('turns a burst of scheduled jobs into ONE Job with completions = parallelism, capped at MAX_AGENTS', async () => {
    const w = await world();
    await Promise.all(Array.from({ length: 15 }, (_, i) => w.send(`job-${i}`, 'scheduled')));
    const report = await w.tick();
    expect(report.drain).toMatchObject({ received: 15, applied: 15, failed: 0 });
    const jobs = w.agentJobs();
    expect(jobs).toHaveLength(1);
    expect(jobs[0]!.spec).toMatchObject({
      completions: 10,
      parallelism: 10,
      completionMode: 'Indexed',
      backoffLimitPerIndex: 0,
    });
    expect(jobs[0]!.metadata?.labels).toMatchObject({
      'app.kubernetes.io/managed-by': 'ci-agent-autoscaler',
      'ci-autoscaler/queue': 'default',
    });
    expect(await w.limiter()).toMatchObject({ inFlight: 10 });
    expect(await sqs.depth(w.queue.url)).toBe(0);

    // At MAX nothing more is asked, however long the queue is.
    await w.tick();
    expect(w.agents()).toBe(10);

    // Agents take 10 CI jobs and finish them: their tokens return and the last 5 get agents.
    kube.startAll();
    await Promise.all(Array.from({ length: 10 }, (_, i) => w.send(`job-${i}`, 'started')));
    await w.tick();
    expect(w.agents()).toBe(10);
    await Promise.all(Array.from({ length: 10 }, (_, i) => w.send(`job-${i}`, 'finished')));
    kube.succeedAll();
    await w.tick();
    expect(await w.limiter()).toMatchObject({ inFlight: 5 });
    expect(w.agentJobs()).toHaveLength(2);
    const second = w.agentJobs().find((j) => j.metadata?.name !== jobs[0]!.metadata?.name);
    expect(second?.spec).toMatchObject({ completions: 5, parallelism: 5 });
  });

  it('provisions nothing extra for duplicate, reordered and cancelled-before-start events', async () => {
    const w = await world();
    await w.send('dup', 'scheduled');
    await w.send('dup', 'scheduled');
    await w.send('early', 'started'); // reordered: started and finished before its scheduled
    await w.send('early', 'finished');
    await w.send('early', 'scheduled');
    await w.send('gone', 'scheduled');
    await w.send('gone', 'cancelled');
    await w.send('late', 'finished'); // finished, then a late scheduled: never pending
    await w.send('late', 'scheduled');
    await w.tick();
    // Only `dup` is pending.
    expect(w.agents()).toBe(1);
    await w.send('dup', 'scheduled');
    await w.tick();
    expect(w.agents()).toBe(1);
    expect(await w.limiter()).toMatchObject({ inFlight: 1 });
  });

  it('never exceeds MAX_AGENTS with 4 scaler invocations running at once', async () => {
    const w = await world({ MAX_AGENTS: '7' });
    await Promise.all(Array.from({ length: 30 }, (_, i) => w.send(`c-${i}`, 'scheduled')));
    await w.tick(); // applies the events and takes 7
    kube.reset(); // the Jobs vanish: every invocation now sees room and races for it
    const invocations = await Promise.all(
      Array.from({ length: 4 }, async () => provision(withoutMetrics(await createPorts(w.config, quiet)), w.settings)),
    );
    const reserved = invocations.reduce((sum, r) => sum + r.decisions.reduce((m, d) => m + d.count, 0), 0);
    expect(reserved).toBeLessThanOrEqual(7);
    expect(w.agents()).toBeLessThanOrEqual(7);
    expect((await w.limiter()).inFlight).toBeLessThanOrEqual(7);
    await w.tick();
    expect(w.agents()).toBe(7);
    expect(await w.limiter()).toMatchObject({ inFlight: 7 });
  });

  it('repairs a crash between the reservation and the create: no leaked token, no second Job', async () => {
    const w = await world();
    await Promise.all(['a', 'b', 'c'].map((id) => w.send(id, 'scheduled')));
    const crashing: ScalerPorts = {
      ...w.ports,
      cluster: {
        ...w.ports.cluster,
        createJob: () => Promise.reject(new Error('Runtime.ExitError: the function crashed')),
      },
    };
    await tick(crashing, w.settings, { waitSeconds: 0, deadline: Date.now() + 10_000 });
    expect(w.agentJobs()).toHaveLength(0);
    expect(await w.limiter()).toMatchObject({ inFlight: 3 });

    await w.tick();
    expect(w.agentJobs()).toHaveLength(1);
    expect(w.agents()).toBe(3);
    await w.tick();
    expect(w.agentJobs()).toHaveLength(1);
    expect(await w.limiter()).toMatchObject({ inFlight: 3 });
  });

  it('treats a crash after the create (Job exists, intent not marked) as done: 409 is success', async () => {
    const w = await world();
    await w.send('x', 'scheduled');
    let created = 0;
    const crashAfterCreate: ScalerPorts = {
      ...w.ports,
      cluster: {
        ...w.ports.cluster,
        createJob: async (job) => {
          await w.ports.cluster.createJob(job);
          created++;
          throw new Error('crashed after create');
        },
      },
    };
    await tick(crashAfterCreate, w.settings, { waitSeconds: 0, deadline: Date.now() + 10_000 });
    expect(created).toBe(1);
    await w.tick();
    await w.tick();
    expect(w.agentJobs()).toHaveLength(1);
    expect(await w.limiter()).toMatchObject({ inFlight: 1 });
  });

  it('leaks nothing when Kubernetes answers 500 or 429 on create, and releases the intent when its lease expires', async () => {
    const w = await world({ INTENT_LEASE_SECONDS: '10' });
    await w.send('p', 'scheduled');
    await w.send('q', 'scheduled');
    kube.failNext('POST', /\/jobs$/, 500);
    const failed = await w.tick();
    expect(failed.errors.join()).toMatch(/create/);
    expect(w.agentJobs()).toHaveLength(0);
    expect(await w.limiter()).toMatchObject({ inFlight: 2 });

    kube.failNext('POST', /\/jobs$/, 429, 1, { retryAfterSeconds: 1 });
    await w.tick();
    expect(w.agentJobs()).toHaveLength(0);

    await w.tick();
    expect(w.agentJobs()).toHaveLength(1);
    expect(w.agents()).toBe(2);

    // A create that keeps failing past the lease: the tokens come back.
    const w2 = await world({ INTENT_LEASE_SECONDS: '10' });
    await w2.send('r', 'scheduled');
    kube.failNext('POST', /\/jobs$/, 503, 100);
    await w2.tick();
    expect(await w2.limiter()).toMatchObject({ inFlight: 1 });
    const later: ScalerPorts = { ...w2.ports, now: () => Date.now() + 11_000 };
    const report = await provision(later, { ...w2.settings, queues: w2.settings.queues });
    expect(report.released).toBe(1);
    expect(report.decisions[0]).toMatchObject({ inFlight: 0 });
  });

  it('returns the tokens of finished and deleted Jobs and corrects a drifted counter', async () => {
    const w = await world();
    await Promise.all(['a', 'b', 'c', 'd'].map((id) => w.send(id, 'scheduled')));
    await w.tick();
    expect(await w.limiter()).toMatchObject({ inFlight: 4 });
    const [job] = w.agentJobs();

    // Two agents finish their CI jobs; pods still Pending count as in flight.
    kube.startAll();
    const pods = kube.pods({ jobName: job!.metadata!.name! });
    kube.succeedPod(pods[0]!.metadata!.name!);
    kube.succeedPod(pods[1]!.metadata!.name!);
    await Promise.all(['a', 'b'].map((id) => w.send(id, 'finished')));
    await w.tick();
    expect(await w.limiter()).toMatchObject({ inFlight: 2 });

    // The Job is deleted out of band: its tokens come back, and the pending jobs get new agents.
    kube.deleteJobOutOfBand(job!.metadata!.name!);
    await w.tick();
    expect(w.agentJobs()).toHaveLength(1);
    expect(await w.limiter()).toMatchObject({ inFlight: 2 });

    // Drift: somebody or something set the counter wrong. The next tick sets it to the truth.
    const store = new DynamoLimiterStore({ tableName: w.config.ledgerTable });
    const { version } = await w.limiter();
    expect(await store.correct({ queue: 'default', expectedVersion: version, inFlight: 9 })).toBe(true);
    const report = await w.tick();
    expect(report.corrected).toBe(1);
    expect(await w.limiter()).toMatchObject({ inFlight: 2 });
    expect(w.agents()).toBe(2);
  });

  it('keeps the MIN_AGENTS warm floor, and does not add it on top of demand', async () => {
    const w = await world({ MIN_AGENTS: '2' });
    await w.tick();
    expect(w.agents()).toBe(2);
    await w.tick();
    expect(w.agents()).toBe(2);

    const w2 = await world({ MIN_AGENTS: '2' });
    await Promise.all(['a', 'b', 'c'].map((id) => w2.send(id, 'scheduled')));
    kube.reset();
    await w2.tick();
    expect(w2.agents()).toBe(3);
  });

  it('shares a namespace with another deployment without counting its agents or colliding on names', async () => {
    const a = await world({ MAX_AGENTS: '4', KUBE_NAMESPACE: 'shared' });
    const b = await world({ MAX_AGENTS: '4', KUBE_NAMESPACE: 'shared' });
    await Promise.all(['1', '2', '3'].map((id) => a.send(`a-${id}`, 'scheduled')));
    await Promise.all(['1', '2'].map((id) => b.send(`b-${id}`, 'scheduled')));
    await a.tick();
    await b.tick(); // same dispatch id "1" as a's: a different Job name
    const jobs = kube.jobs('shared');
    expect(jobs.map((j) => j.spec?.parallelism).sort()).toEqual([2, 3]);
    expect(new Set(jobs.map((j) => j.metadata?.name)).size).toBe(2);
    expect(await a.limiter()).toMatchObject({ inFlight: 3 });
    expect(await b.limiter()).toMatchObject({ inFlight: 2 });
  });

  it('leaves an unreadable message in the queue for the dead-letter queue, deleting the good ones', async () => {
    const w = await world({}, 1); // redelivered after 1 s, moved to the DLQ after 2 receives
    await sqs.client.send(
      new (await import('@aws-sdk/client-sqs')).SendMessageCommand({
        QueueUrl: w.queue.url,
        MessageBody: '{"not":"an event"}',
      }),
    );
    await w.send('ok', 'scheduled');
    const first = await w.tick();
    expect(first.drain).toMatchObject({ received: 2, applied: 1, invalid: 1 });
    expect(w.agents()).toBe(1);
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 1100));
      await w.tick();
    }
    expect(await sqs.depth(w.queue.url)).toBe(0);
    expect(await sqs.depth(w.queue.dlqUrl!)).toBe(1);
  });

  it('lists no pod while agents are healthy; the Failed pods of a Job whose agent failed at start', async () => {
    const w = await world();
    for (const id of ['h-1', 'h-2']) await w.send(id, 'scheduled');
    await w.tick();
    kube.startAll();
    await w.tick();
    const podLists = () => kube.lists.filter((l) => l.resource === 'pods');
    expect(podLists()).toEqual([]);
    const [pod] = kube.pods({ namespace: w.config.namespace });
    kube.failPod(pod?.metadata?.name ?? '', { exitCode: 1, namespace: w.config.namespace });
    await w.tick();
    // Its Failed pods; beside them a sample of the queue's recent Jobs (this one) that may prove
    // the queue healthy at once.
    expect(podLists()).toHaveLength(2);
    expect(podLists()).toContainEqual(
      expect.objectContaining({ fieldSelector: 'status.phase=Failed', items: 1, namespace: w.config.namespace }),
    );
  });

  it('a warm pool whose target dropped: exactly scaleDown agents stopped, the newest Running and Ready first; their tokens come back only once their pods end', async () => {
    // Its own fake API server, with a clock: the agents' start times (and an older stop) are set.
    let pinned: number | undefined;
    const clocked = await startFakeKube({ clock: () => pinned ?? Date.now() });
    try {
      const w = await world({ KUBECONFIG: clocked.kubeconfigPath, WARM_POOL: 'adaptive' });
      const namespace = w.config.namespace;
      const pool = new PinnedPool(6);
      const lines: string[] = [];
      const log = {
        ...quiet,
        info: (m: string, x: Record<string, unknown>) => void lines.push(`${m} ${JSON.stringify(x)}`),
      };
      const stopMetrics: [string, number, number][] = [];
      const metrics = { decision: () => {}, stops: (q: string, n: number, f: number) => stopMetrics.push([q, n, f]) };
      const ports: ScalerPorts = { ...w.ports, warmPool: pool, log, metrics };
      const run = () => tick(ports, w.settings, { waitSeconds: 0, deadline: Date.now() + 20_000 });

      // Six warm agents, no CI job yet.
      const first = await run();
      expect(first.decisions[0]).toMatchObject({ count: 6, reason: 'warm' });
      const [job] = clocked.jobs(namespace);
      const jobName = job?.metadata?.name ?? '';
      const pods = clocked.pods({ namespace, jobName });
      const byIndex = (i: number) =>
        pods.find((p) => p.metadata?.labels?.['batch.kubernetes.io/job-completion-index'] === String(i))?.metadata
          ?.name ?? '';
      const now = Date.now();
      // Index 0 stays Pending (still starting); the others start at different times, 3 first.
      for (const [i, ago] of [
        [3, 400],
        [1, 300],
        [5, 200],
        [2, 100],
        [4, 50],
      ] as const) {
        pinned = now - ago * 1000;
        clocked.runPod(byIndex(i), namespace);
      }
      // Index 3, the oldest, was stopped 120 s ago and still runs: a busy agent finishing its CI job.
      pinned = now - 120_000;
      const three = clocked.pods({ namespace, jobName }).find((p) => p.metadata?.name === byIndex(3));
      expect(await w.ports.cluster.deletePod!({ name: byIndex(3), uid: three?.metadata?.uid ?? '' }, 22_800)).toBe(
        'deleted',
      );
      pinned = undefined;
      // One CI job runs (on index 3, say): 5 idle agents.
      await w.send('ci-1', 'scheduled');
      await w.send('ci-1', 'started');

      // The target drops to 2: 3 idle agents are surplus.
      pool.warm = 2;
      const second = await run();
      expect(second.errors).toEqual([]);
      expect(second.decisions[0]).toMatchObject({ count: 0, idle: 5, scaleDown: 3 });
      expect(second.stops).toEqual([
        expect.objectContaining({ queue: 'default', scaleDown: 3, stopped: [byIndex(4), byIndex(2), byIndex(5)] }),
      ]);
      const deleting = () =>
        clocked
          .pods({ namespace, jobName })
          .filter((p) => p.metadata?.deletionTimestamp)
          .map((p) => p.metadata?.name)
          .sort();
      expect(deleting()).toEqual([byIndex(4), byIndex(2), byIndex(5), byIndex(3)].sort());
      const stopped = clocked.pods({ namespace, jobName }).find((p) => p.metadata?.name === byIndex(4));
      expect(stopped?.metadata?.deletionGracePeriodSeconds).toBe(w.config.jobActiveDeadlineSeconds);
      expect(clocked.calls.filter((c) => c.verb === 'delete' && c.resource === 'pods')).toHaveLength(4);
      expect(lines.filter((l) => l.startsWith('surplus agents stopped'))).toEqual([
        expect.stringContaining(`"stopped":["${byIndex(4)}","${byIndex(2)}","${byIndex(5)}"]`),
      ]);
      // The AgentsStopped metric (scaler/metrics.ts): 3 stopped, none failed.
      expect(stopMetrics).toEqual([['default', 3, 0]]);
      // Terminating, not ended: the Job has no replacement and the tokens are all held.
      expect(clocked.job(jobName, namespace)?.status).toMatchObject({ active: 2, terminating: 4 });
      expect(await w.limiter()).toMatchObject({ inFlight: 6 });

      // The next tick sees the same surplus, and the 3 agents leaving cover it: no more stops.
      const third = await run();
      expect(third.decisions[0]).toMatchObject({ scaleDown: 3 });
      expect(third.stops).toEqual([expect.objectContaining({ stopped: [], stopping: 3 })]);
      expect(clocked.calls.filter((c) => c.verb === 'delete' && c.resource === 'pods')).toHaveLength(4);
      expect(await w.limiter()).toMatchObject({ inFlight: 6 });

      // One stopped agent was idle and exits 0: its token comes back, and only its.
      clocked.succeedPod(byIndex(4), namespace);
      const fourth = await run();
      expect(fourth.stops).toEqual([expect.objectContaining({ stopped: [], stopping: 2 })]);
      expect(clocked.job(jobName, namespace)?.status).toMatchObject({ succeeded: 1, active: 2, terminating: 3 });
      expect(await w.limiter()).toMatchObject({ inFlight: 5 });
      expect(clocked.jobs(namespace)).toHaveLength(1);
      recorded.push(...clocked.calls);
    } finally {
      await clocked.stop();
    }
  });

  it('two scaler invocations at once stop the surplus once: scaleDown distinct agents, not twice as many', async () => {
    const w = await world({ WARM_POOL: 'adaptive' });
    const namespace = w.config.namespace;
    // Two invocations: each its own process (its own trackers), the same stores and cluster.
    const a = new PinnedPool(5);
    const b = new PinnedPool(5);
    const portsA: ScalerPorts = { ...w.ports, warmPool: a, exited: new ExitedAgents() };
    const portsB: ScalerPorts = { ...w.ports, warmPool: b, exited: new ExitedAgents() };
    const run = (ports: ScalerPorts) => tick(ports, w.settings, { waitSeconds: 0, deadline: Date.now() + 20_000 });
    expect((await run(portsA)).decisions[0]).toMatchObject({ count: 5, reason: 'warm' });
    kube.startAll();
    // The target drops to 2: 3 surplus, seen by both at once.
    a.warm = 2;
    b.warm = 2;
    const [ra, rb] = await Promise.all([run(portsA), run(portsB)]);
    expect([ra.decisions[0]?.scaleDown, rb.decisions[0]?.scaleDown]).toEqual([3, 3]);
    const deleting = kube.pods({ namespace }).filter((p) => p.metadata?.deletionTimestamp);
    expect(deleting).toHaveLength(3);
    // Whatever each saw, the pods they asked to stop are the same three (the newest; a tie on
    // start time goes by creation, then name).
    const asked = new Set([...(ra.stops?.[0]?.stopped ?? []), ...(rb.stops?.[0]?.stopped ?? [])]);
    expect([...asked].sort()).toEqual(deleting.map((p) => p.metadata?.name).sort());
  });

  it('made only Kubernetes calls that the RBAC Role in infra/k8s allows, and used every grant', () => {
    recorded.push(...kube.calls);
    // Each test used its own namespace; the Role is deployed in the one KUBE_NAMESPACE.
    const calls = recorded.map((c) => ({ ...c, namespace: c.namespace && 'ci-agents' }));
    assertRbacCovers(calls);
    // Every grant but the Secrets, which only GitHub queues use (test/integration/github-jit.test.ts),
    // and what only a Job whose pods the server refuses uses (test/integration/kube-refused-pods.test.ts);
    // test/deploy/rbac.test.ts drives them all.
    const role = scalerRole();
    assertRbacCovers(calls, {
      exhaustive: true,
      role: roleWithout({ ...role, rules: role.rules.filter((r) => !r.resources.includes('secrets')) }, [
        'batch/jobs:delete',
        'core/events:list',
      ]),
    });
  });
});
