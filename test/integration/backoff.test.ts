/**
 * Failing agents are backed off, not re-created every tick: the real scaler wiring against
 * DynamoDB Local, fauxqs and the fake Kubernetes API, on a simulated clock shared by the scaler
 * and the fake cluster. The fake's controller fails pods on command.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEventsQueue } from '../../functions/adapters/sqs/events-queue.js';
import type { JobEvent } from '../../functions/core/job-event.js';
import type { ScalerLog, ScalerPorts } from '../../functions/scaler/ports.js';
import { tick } from '../../functions/scaler/scaler.js';
import { createPorts, scalerSettings } from '../../functions/scaler/wiring.js';
import { resetAwsClients } from '../../functions/shared/aws.js';
import { loadScalerConfig } from '../../functions/shared/config.js';
import { FakeKube, type KubeList } from '../../tools/fakes/kube/index.js';
import { assertRbacCovers } from '../deploy/rbac.js';
import { createLedgerTable, type DynamoDbLocal, startDynamoDbLocal, useDynamoDbLocal } from '../support/dynamodb.js';
import { jobEvent } from '../support/job-events.js';
import { type SqsHarness, startSqs } from '../support/sqs.js';

let dynamo: DynamoDbLocal;
let sqs: SqsHarness;
let kube: FakeKube;
let clock = Date.now();

beforeAll(async () => {
  kube = new FakeKube({ clock: () => clock });
  [dynamo, sqs] = await Promise.all([startDynamoDbLocal(), startSqs(), kube.start()]);
  useDynamoDbLocal(dynamo.endpoint);
  sqs.useEnv();
  resetAwsClients();
});

afterAll(async () => {
  resetAwsClients();
  await Promise.all([dynamo?.stop(), sqs?.stop(), kube?.stop()]);
});

const TICK_MS = 10_000;

describe('back-off of queues whose agents fail at start', () => {
  it('10 minutes of failing agents: a bounded number of Jobs, the other queue served, recovery once fixed', async () => {
    const queue = await sqs.createQueue('backoff-events', { maxReceiveCount: 3, visibilityTimeoutSeconds: 30 });
    await createLedgerTable(dynamo.endpoint, 'backoff-ledger');
    const config = loadScalerConfig({
      EVENTS_QUEUE_URL: queue.url,
      LEDGER_TABLE: 'backoff-ledger',
      KUBECONFIG: kube.kubeconfigPath,
      QUEUES: 'broken,healthy',
      MAX_AGENTS: '10',
      KUBE_NAMESPACE: 'ci-agents',
    });
    expect(config.backoff).toEqual({ baseSeconds: 30, maxSeconds: 600, unschedulableSeconds: 300 });
    const lines: { level: string; message: string; extra: Record<string, unknown> }[] = [];
    const log: ScalerLog = {
      debug() {},
      info: (message, extra) => void lines.push({ level: 'info', message, extra }),
      warn: (message, extra) => void lines.push({ level: 'warn', message, extra }),
      error: (message, extra) => void lines.push({ level: 'error', message, extra }),
    };
    const metrics: { queue: string; step: number; failures: number }[] = [];
    const base = await createPorts(config, log);
    const ports: ScalerPorts = {
      ...base,
      now: () => clock,
      metrics: {
        decision() {},
        backoff: (queue, step, failures) => void metrics.push({ queue, step, failures }),
      },
    };
    const settings = scalerSettings(config);
    const events = createEventsQueue(queue.url);
    const schedule = async (q: string, jobId: string) => {
      const at = new Date(clock).toISOString();
      const event: JobEvent = jobEvent(jobId, 'scheduled', { queue: q, occurredAt: at });
      await events.sendEvent(event);
    };
    const jobsOf = (q: string) =>
      kube.jobs('ci-agents').filter((j) => j.metadata?.annotations?.['ci-autoscaler/queue'] === q);
    const pendingPods = (q: string) =>
      kube
        .pods({ namespace: 'ci-agents', phase: 'Pending' })
        .filter((p) => p.metadata?.annotations?.['ci-autoscaler/queue'] === q);

    // Three CI jobs wait on `broken`, whose agents exit at once (a revoked agent token): each
    // failed index frees its slot, so without back-off every tick would create a new Job.
    for (let i = 0; i < 3; i++) await schedule('broken', `b-${i}`);
    let fixed = false;
    let healthyServed = 0;
    const start = clock;
    const run = async (untilMs: number) => {
      while (clock - start < untilMs) {
        await tick(ports, settings, { waitSeconds: 0, deadline: Date.now() + 20_000 });
        for (const pod of pendingPods('broken')) {
          const name = pod.metadata?.name ?? '';
          if (fixed) kube.runPod(name, 'ci-agents');
          else kube.failPod(name, { exitCode: 1, namespace: 'ci-agents' });
        }
        for (const pod of pendingPods('healthy')) kube.runPod(pod.metadata?.name ?? '', 'ci-agents');
        clock += TICK_MS;
      }
    };

    // The healthy queue gets demand in the middle of the storm: it is served at its next tick.
    await run(300_000);
    await schedule('healthy', 'h-0');
    await schedule('healthy', 'h-1');
    await run(310_000);
    healthyServed = jobsOf('healthy').reduce((n, j) => n + (j.spec?.parallelism ?? 0), 0);
    expect(healthyServed).toBe(2);
    await run(600_000);

    // Bound: with base 30 s and cap 600 s, 1 + ceil(log2(1 + 600/30)) = 6 Jobs in 10 minutes
    // (without back-off: one Job per failed agent, every 10 s tick: 60+).
    const created = jobsOf('broken').length;
    console.log(`broken queue: ${created} Jobs created in 10 simulated minutes of failing agents`);
    expect(created).toBeGreaterThanOrEqual(2);
    expect(created).toBeLessThanOrEqual(6);
    // Probes are single agents: 3 for the first Job, then 1 each.
    expect(jobsOf('broken').map((j) => j.spec?.parallelism)).toEqual([3, ...Array(created - 1).fill(1)]);

    // One clear line per back-off, with the reason Kubernetes gave; a metric.
    const backoffs = lines.filter((l) => l.level === 'warn' && /backs off/.test(l.message));
    expect(backoffs.length).toBeGreaterThanOrEqual(created - 1);
    expect(backoffs.length).toBeLessThanOrEqual(created);
    expect(backoffs[0]?.message).toMatch(
      /^queue broken backs off 30 s: agent failed at start \(Error: container agent exited with code 1\)$/,
    );
    expect(backoffs.some((l) => /Error: container agent exited with code 1/.test(l.message))).toBe(true);
    expect(backoffs.map((l) => l.extra.holdSeconds)).toEqual(backoffs.map((_, i) => Math.min(600, 30 * 2 ** i)));
    expect(metrics.some((m) => m.queue === 'broken' && m.failures > 0)).toBe(true);
    expect(metrics.filter((m) => m.queue === 'healthy').every((m) => m.step === 0)).toBe(true);

    // The cause is fixed (image pushed, token rotated): within the cap plus the start window the
    // queue is healthy again and every waiting CI job has an agent.
    fixed = true;
    const stuck = kube.pods({ namespace: 'ci-agents' }).filter((p) => p.status?.phase === 'Pending');
    for (const p of stuck) kube.runPod(p.metadata?.name ?? '', 'ci-agents');
    await run(600_000 + 600_000 + 120_000);
    expect(lines.some((l) => /back-off over/.test(l.message) && l.extra.queue === 'broken')).toBe(true);
    const running = kube
      .pods({ namespace: 'ci-agents', phase: 'Running' })
      .filter((p) => p.metadata?.annotations?.['ci-autoscaler/queue'] === 'broken');
    expect(running.length).toBeGreaterThanOrEqual(3);
    assertRbacCovers(kube.calls);
  }, 120_000);

  it('many healthy agents across several Jobs: no pod listed per tick, whatever their number; a failing Job is still found, a sporadic one holds nothing', async () => {
    const NS = 'ci-scale';
    const queue = await sqs.createQueue('scale-events', { maxReceiveCount: 3, visibilityTimeoutSeconds: 30 });
    await createLedgerTable(dynamo.endpoint, 'scale-ledger');
    const config = loadScalerConfig({
      EVENTS_QUEUE_URL: queue.url,
      LEDGER_TABLE: 'scale-ledger',
      KUBECONFIG: kube.kubeconfigPath,
      QUEUES: 'steady,images',
      MAX_AGENTS: '2000',
      KUBE_NAMESPACE: NS,
    });
    const warnings: string[] = [];
    const log: ScalerLog = {
      debug() {},
      info() {},
      warn: (message) => void warnings.push(message),
      error() {},
    };
    const ports: ScalerPorts = { ...(await createPorts(config, log)), now: () => clock };
    const settings = scalerSettings(config);
    const events = createEventsQueue(queue.url);
    let n = 0;
    const schedule = async (q: string, count: number) => {
      const at = new Date(clock).toISOString();
      for (let i = 0; i < count; i += 50)
        await Promise.all(
          Array.from({ length: Math.min(50, count - i) }, () => {
            const jobId = `${q}-${n++}`;
            return events.sendEvent(jobEvent(jobId, 'scheduled', { queue: q, occurredAt: at }));
          }),
        );
    };
    const jobsOf = (q: string) => kube.jobs(NS).filter((j) => j.metadata?.annotations?.['ci-autoscaler/queue'] === q);
    /** One tick; the Kubernetes requests it made. */
    const tickCalls = async () => {
      const calls = kube.calls.length;
      const lists = kube.lists.length;
      await tick(ports, settings, { waitSeconds: 0, deadline: Date.now() + 20_000 });
      clock += TICK_MS;
      return { calls: kube.calls.slice(calls), pods: kube.lists.slice(lists).filter((l) => l.resource === 'pods') };
    };

    // 750 agents in several Jobs (more than a page of 500 pods), running and ready.
    const agents = (q: string) => jobsOf(q).reduce((sum, j) => sum + (j.spec?.parallelism ?? 0), 0);
    for (let wave = 1; wave <= 3; wave++) {
      await schedule('steady', 250);
      for (let i = 0; i < 30 && agents('steady') < 250 * wave; i++) {
        await tickCalls();
        for (const j of jobsOf('steady')) kube.startAll(j.metadata?.name);
      }
    }
    expect(agents('steady')).toBe(750);
    expect(jobsOf('steady').length).toBeGreaterThanOrEqual(3);

    // Minutes of healthy agents: each tick lists our Jobs (one page) and no pod at all.
    for (let i = 0; i < 6; i++) {
      const { calls, pods } = await tickCalls();
      expect(pods).toEqual([]);
      expect(calls).toEqual([{ verb: 'list', group: 'batch', resource: 'jobs', namespace: NS }]);
    }

    // One agent of a new Job fails at start: the next tick lists that Job's Failed pods (one
    // request, one pod). Among 750 healthy starts it is sporadic (a bad node): logged, counted,
    // but the queue is not held, and demand that follows is served at once.
    const before = new Set(jobsOf('steady').map((j) => j.metadata?.name));
    await schedule('steady', 2);
    await tickCalls();
    const newest = jobsOf('steady').find((j) => !before.has(j.metadata?.name))?.metadata?.name ?? '';
    const [failing] = kube.pods({ namespace: NS, jobName: newest });
    kube.failPod(failing?.metadata?.name ?? '', { exitCode: 1, namespace: NS });
    const found = await tickCalls();
    expect(found.pods.find((l) => l.fieldSelector)).toEqual({
      resource: 'pods',
      namespace: NS,
      labelSelector: `app.kubernetes.io/managed-by=ci-agent-autoscaler,job-name in (${newest})`,
      fieldSelector: 'status.phase=Failed',
      limit: 500,
      items: 1,
    });
    // Beside it, a sample of the queue's Jobs since the failure that may prove it healthy at once
    // (the failing Job's other agent still runs): one request, 5 pods at most per Job.
    const proof = found.pods.filter((l) => !l.fieldSelector);
    expect(proof).toHaveLength(1);
    expect(proof[0]?.labelSelector).toMatch(/,batch\.kubernetes\.io\/job-completion-index in \(0,1,2,3,4\)$/);
    expect(proof[0]?.labelSelector).toContain(newest);
    expect(proof[0]?.items).toBeLessThanOrEqual(5 * jobsOf('steady').length);
    expect(warnings.filter((w) => /^queue steady backs off/.test(w))).toEqual([]);
    expect(
      warnings.filter((w) =>
        /^queue steady not held: agent failed at start \(Error: .*\); 1 failed, \d+ started healthy in the window$/.test(
          w,
        ),
      ),
    ).toHaveLength(1);
    const served = jobsOf('steady').length;
    await schedule('steady', 5);
    await tickCalls();
    expect(jobsOf('steady').length).toBeGreaterThan(served);

    // Not held: the next tick lists no pod again.
    expect((await tickCalls()).pods).toEqual([]);

    // A Job whose agents cannot pull their image: not ready, so looked at once past the 30 s
    // grace, through a sample of its first indexes, and backed off with Kubernetes' reason.
    await schedule('images', 20);
    await tickCalls();
    const pulling = jobsOf('images')[0]?.metadata?.name ?? '';
    for (const p of kube.pods({ namespace: NS, jobName: pulling }))
      kube.setPodWaiting(p.metadata?.name ?? '', 'ErrImagePull', 'manifest unknown', NS);
    const named = (pods: readonly KubeList[]) => pods.filter((l) => l.labelSelector?.includes(pulling));
    expect(named((await tickCalls()).pods)).toEqual([]);
    let sampled: KubeList[] = [];
    for (let i = 0; i < 3 && sampled.length === 0; i++) sampled = named((await tickCalls()).pods);
    expect(sampled).toHaveLength(1);
    expect(sampled[0]?.labelSelector).toMatch(
      new RegExp(
        `job-name in \\([^)]*${pulling}[^)]*\\),batch\\.kubernetes\\.io/job-completion-index in \\(0,1,2,3,4\\)$`,
      ),
    );
    // At most 5 pods of each Job named.
    const names = /job-name in \(([^)]*)\)/.exec(sampled[0]?.labelSelector ?? '')?.[1]?.split(',') ?? [];
    expect(sampled[0]?.items).toBeLessThanOrEqual(5 * names.length);
    expect(warnings.filter((w) => /^queue images backs off/.test(w))).toEqual([
      'queue images backs off 30 s: agent failed at start (ErrImagePull: container agent: manifest unknown)',
    ]);
  }, 120_000);
});
