/**
 * What a real API server does that the scaler must see: pods the server refuses to create (a
 * ResourceQuota `pods: 0`, a PodSecurity level, a missing ServiceAccount) leave a Job with
 * active=0, failed=0 and no condition, and only `FailedCreate` Events (the Job controller's
 * recorder, pkg/controller/controller_utils.go). The real scaler wiring against DynamoDB Local,
 * fauxqs and the fake Kubernetes API on a simulated clock; the fake refuses pods as admission does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEventsQueue } from '../../functions/adapters/sqs/events-queue.js';
import { queueOf } from '../../functions/core/agent-job.js';
import type { ScalerLog, ScalerPorts } from '../../functions/scaler/ports.js';
import { tick } from '../../functions/scaler/scaler.js';
import { createPorts, scalerSettings } from '../../functions/scaler/wiring.js';
import { resetAwsClients } from '../../functions/shared/aws.js';
import { loadScalerConfig } from '../../functions/shared/config.js';
import { FakeKube } from '../../tools/fakes/kube/index.js';
import { assertRbacCovers } from '../deploy/rbac.js';
import { createLedgerTable, type DynamoDbLocal, startDynamoDbLocal, useDynamoDbLocal } from '../support/dynamodb.js';
import { jobEvent } from '../support/job-events.js';
import { TEMPLATE_WITH_TYPOS, writeJobTemplate } from '../support/job-template.js';
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

const TICK_MS = 60_000;

const REFUSALS = [
  {
    reason: 'ResourceQuota',
    message: 'exceeded quota: agents, requested: pods=1, used: pods=0, limited: pods=0',
  },
  {
    reason: 'PodSecurity',
    message:
      'violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "agent" must set securityContext.allowPrivilegeEscalation=false)',
  },
  {
    reason: 'ServiceAccountMissing',
    message: 'error looking up service account ci-agents/buildkite-agent: serviceaccount "buildkite-agent" not found',
  },
];

describe('a Job whose pods the API server refuses', () => {
  it.each(REFUSALS)(
    '$reason: the queue backs off within two ticks naming the reason, its tokens come back, the other queue is served',
    async ({ reason, message }) => {
      kube.reset();
      const name = `refused-${reason.toLowerCase()}`;
      const queue = await sqs.createQueue(name, { maxReceiveCount: 3, visibilityTimeoutSeconds: 30 });
      await createLedgerTable(dynamo.endpoint, name);
      const config = loadScalerConfig({
        EVENTS_QUEUE_URL: queue.url,
        LEDGER_TABLE: name,
        KUBECONFIG: kube.kubeconfigPath,
        QUEUES: 'refused,healthy',
        MAX_AGENTS: '10',
        KUBE_NAMESPACE: 'ci-agents',
      });
      const lines: { level: string; message: string; extra: Record<string, unknown> }[] = [];
      const log: ScalerLog = {
        debug() {},
        info: (m, extra) => void lines.push({ level: 'info', message: m, extra }),
        warn: (m, extra) => void lines.push({ level: 'warn', message: m, extra }),
        error: (m, extra) => void lines.push({ level: 'error', message: m, extra }),
      };
      const ports: ScalerPorts = { ...(await createPorts(config, log)), now: () => clock };
      const settings = scalerSettings(config);
      const events = createEventsQueue(queue.url);
      const schedule = (q: string, jobId: string) =>
        events.sendEvent(jobEvent(jobId, 'scheduled', { queue: q, occurredAt: new Date(clock).toISOString() }));
      const jobsOf = (q: string) => kube.jobs('ci-agents').filter((j) => queueOf(j) === q);
      const inFlight = async (q: string) =>
        (await ports.limiter.snapshot()).limiters.find((l) => l.queue === q)?.inFlight ?? 0;
      kube.refusePodCreates('ci-agents', message, (job) => queueOf(job) === 'refused');

      for (let i = 0; i < 3; i++) await schedule('refused', `r-${i}`);
      await schedule('healthy', 'h-0');
      // Tick 1: one Job per queue; the refused one gets no pod, only FailedCreate Events.
      const first = await tick(ports, settings, { waitSeconds: 0, deadline: Date.now() + 20_000 });
      expect(first.errors).toEqual([]);
      expect(jobsOf('refused').map((j) => j.spec?.parallelism)).toEqual([3]);
      const refusedJob = jobsOf('refused')[0]?.metadata?.name ?? '';
      expect(kube.job(refusedJob, 'ci-agents')?.status).toMatchObject({ ready: 0 });
      expect(kube.job(refusedJob, 'ci-agents')?.status?.active ?? 0).toBe(0);
      expect(kube.job(refusedJob, 'ci-agents')?.status?.conditions ?? []).toEqual([]);
      // One per pod the controller tried (each create names its generated pod).
      expect(new Set(kube.events('ci-agents').map((e) => `${e.reason} ${e.involvedObject.name}`))).toEqual(
        new Set([`FailedCreate ${refusedJob}`]),
      );
      expect(await inFlight('refused')).toBe(3);
      kube.startAll();

      // Tick 2: the Events are read, the queue backs off with a line naming the reason, the Job is
      // deleted (no agent of it can appear later) and its 3 tokens are returned.
      clock += TICK_MS;
      const second = await tick(ports, settings, { waitSeconds: 0, deadline: Date.now() + 20_000 });
      expect(second.errors).toEqual([]);
      const backoff = lines.filter((l) => l.level === 'warn' && /backs off/.test(l.message));
      expect(backoff).toHaveLength(1);
      expect(backoff[0]?.extra).toMatchObject({ queue: 'refused', reason, jobName: refusedJob });
      expect(backoff[0]?.message).toContain(`agent failed at start (${reason}: the pods of Job ${refusedJob}`);
      expect(backoff[0]?.message).toContain(message);
      expect(kube.job(refusedJob, 'ci-agents')).toBeUndefined();
      expect(second.released).toBe(3);
      expect(await inFlight('refused')).toBe(0);
      // Held: no new Job for the refused queue; the healthy queue was served at tick 1.
      expect(jobsOf('refused')).toEqual([]);
      expect(jobsOf('healthy').map((j) => j.spec?.parallelism)).toEqual([1]);
      expect(await inFlight('healthy')).toBe(1);

      // Fixed (quota raised): after the hold, one probe agent, which starts.
      kube.refusePodCreates('ci-agents', undefined);
      clock += TICK_MS;
      await tick(ports, settings, { waitSeconds: 0, deadline: Date.now() + 20_000 });
      expect(jobsOf('refused').map((j) => j.spec?.parallelism)).toEqual([1]);
      expect(kube.pods({ namespace: 'ci-agents' }).filter((p) => queueOf(p as never) === 'refused')).toHaveLength(1);
      assertRbacCovers(kube.calls);
    },
    60_000,
  );

  it('a Job killed by its activeDeadlineSeconds soon after its agents started is no start failure', async () => {
    kube.reset();
    const queue = await sqs.createQueue('deadline', { maxReceiveCount: 3, visibilityTimeoutSeconds: 30 });
    await createLedgerTable(dynamo.endpoint, 'deadline');
    const config = loadScalerConfig({
      EVENTS_QUEUE_URL: queue.url,
      LEDGER_TABLE: 'deadline',
      KUBECONFIG: kube.kubeconfigPath,
      QUEUES: 'q',
      MAX_AGENTS: '10',
      KUBE_NAMESPACE: 'ci-agents',
    });
    const lines: string[] = [];
    const quiet = () => {};
    const ports: ScalerPorts = {
      ...(await createPorts(config, { debug: quiet, info: quiet, warn: (m) => void lines.push(m), error: quiet })),
      now: () => clock,
    };
    const events = createEventsQueue(queue.url);
    for (let i = 0; i < 2; i++)
      await events.sendEvent(
        jobEvent(`d-${i}`, 'scheduled', { queue: 'q', occurredAt: new Date(clock).toISOString() }),
      );
    await tick(ports, scalerSettings(config), { waitSeconds: 0, deadline: Date.now() + 20_000 });
    const [job] = kube.jobs('ci-agents');
    kube.startAll();
    clock += 10_000;
    // The deadline comes 10 s after the agents started (well inside the start window).
    kube.expireDeadline(job?.metadata?.name ?? '', 'ci-agents');
    expect(kube.job(job?.metadata?.name ?? '', 'ci-agents')?.status?.failed).toBe(2);
    clock += TICK_MS;
    const report = await tick(ports, scalerSettings(config), { waitSeconds: 0, deadline: Date.now() + 20_000 });
    expect(report.errors).toEqual([]);
    expect(lines.filter((l) => /backs off/.test(l))).toEqual([]);
    expect(ports.backoff?.gate('q', clock).step).toBe(0);
  }, 60_000);

  it('a custom template with a typo (an unknown field): the first tick fails its create with the field named, nothing is made', async () => {
    kube.reset();
    const tpl = writeJobTemplate(TEMPLATE_WITH_TYPOS);
    const queue = await sqs.createQueue('typo', { maxReceiveCount: 3, visibilityTimeoutSeconds: 30 });
    await createLedgerTable(dynamo.endpoint, 'typo');
    const config = loadScalerConfig({
      EVENTS_QUEUE_URL: queue.url,
      LEDGER_TABLE: 'typo',
      KUBECONFIG: kube.kubeconfigPath,
      QUEUES: 'q',
      MAX_AGENTS: '10',
      KUBE_NAMESPACE: 'ci-agents',
      JOB_TEMPLATE: tpl.path,
    });
    const warnings: { message: string; extra: Record<string, unknown> }[] = [];
    const quiet = () => {};
    const ports: ScalerPorts = {
      ...(await createPorts(config, {
        debug: quiet,
        info: quiet,
        warn: (message, extra) => void warnings.push({ message, extra }),
        error: quiet,
      })),
      now: () => clock,
    };
    await createEventsQueue(queue.url).sendEvent(
      jobEvent('t-0', 'scheduled', { queue: 'q', occurredAt: new Date(clock).toISOString() }),
    );
    const report = await tick(ports, scalerSettings(config), { waitSeconds: 0, deadline: Date.now() + 20_000 });
    tpl.remove();
    const expected =
      'strict decoding error: unknown field "spec.template.spec.containers[0].imagePullPolice", unknown field "spec.template.spec.nodeSelecter"';
    expect(report.errors).toEqual([expect.stringContaining(expected)]);
    expect(report.errors[0]).toMatch(/HTTP 400 BadRequest/);
    expect(warnings.map((w) => w.extra.error)).toEqual([expect.stringContaining(expected)]);
    expect(kube.jobs('ci-agents')).toEqual([]);
  }, 60_000);

  it('a healthy tick reads no Event; a Job whose pods exist is never looked at for Events', async () => {
    kube.reset();
    const queue = await sqs.createQueue('refused-none', { maxReceiveCount: 3, visibilityTimeoutSeconds: 30 });
    await createLedgerTable(dynamo.endpoint, 'refused-none');
    const config = loadScalerConfig({
      EVENTS_QUEUE_URL: queue.url,
      LEDGER_TABLE: 'refused-none',
      KUBECONFIG: kube.kubeconfigPath,
      QUEUES: 'healthy',
      MAX_AGENTS: '10',
      KUBE_NAMESPACE: 'ci-agents',
    });
    const quiet = () => {};
    const ports: ScalerPorts = {
      ...(await createPorts(config, { debug: quiet, info: quiet, warn: quiet, error: quiet })),
      now: () => clock,
    };
    const events = createEventsQueue(queue.url);
    for (let i = 0; i < 4; i++)
      await events.sendEvent(
        jobEvent(`n-${i}`, 'scheduled', { queue: 'healthy', occurredAt: new Date(clock).toISOString() }),
      );
    for (let t = 0; t < 3; t++) {
      await tick(ports, scalerSettings(config), { waitSeconds: 0, deadline: Date.now() + 20_000 });
      kube.startAll();
      clock += TICK_MS;
    }
    expect(kube.calls.filter((c) => c.resource === 'events')).toEqual([]);
  }, 60_000);
});
