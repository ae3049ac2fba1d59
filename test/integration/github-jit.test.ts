/**
 * GitHub just-in-time runners end to end: signed `workflow_job` webhooks (the real example
 * payloads of @octokit/webhooks-examples, with their labels set per queue) through the real
 * webhook handler, fauxqs (SQS), DynamoDB Local, the real scaler wiring (GitHub App client from
 * @octokit/auth-app) against a fake GitHub API and the fake Kubernetes API, to the Secret and
 * the Job the scaler creates.
 */
import type { V1Job } from '@kubernetes/client-node';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DynamoLimiterStore } from '../../functions/adapters/dynamodb/limiter-store.js';
import { JitRunners, jitSecretName, parseRunnerName, runnerTag } from '../../functions/adapters/github/jit-runners.js';
import { createRunnersApi } from '../../functions/adapters/github/runners-api.js';
import { SecretStore } from '../../functions/adapters/secrets/secret-store.js';
import { createEventsQueue } from '../../functions/adapters/sqs/events-queue.js';
import type { ScalerLog, ScalerPorts, ScalerSettings } from '../../functions/scaler/ports.js';
import { tick } from '../../functions/scaler/scaler.js';
import { createPorts, scalerSettings } from '../../functions/scaler/wiring.js';
import { resetAwsClients } from '../../functions/shared/aws.js';
import { loadScalerConfig, loadWebhookConfig, type ScalerConfig } from '../../functions/shared/config.js';
import { createWebhookHandler } from '../../functions/webhook/app.js';
import { type FakeGitHub, startFakeGitHub } from '../../tools/fakes/github/index.js';
import { type FakeKube, startFakeKube } from '../../tools/fakes/kube/index.js';
import { assertRbacCovers, roleWithout, scalerRole } from '../deploy/rbac.js';
import { createLedgerTable, type DynamoDbLocal, startDynamoDbLocal, useDynamoDbLocal } from '../support/dynamodb.js';
import { type SqsHarness, startSqs } from '../support/sqs.js';
import { GITHUB_SECRET, githubRequest, workflowJobExamples } from '../support/webhook-fixtures.js';

let dynamo: DynamoDbLocal;
let sqs: SqsHarness;
let kube: FakeKube;
let gh: FakeGitHub;
let n = 0;

beforeAll(async () => {
  [dynamo, sqs, kube, gh] = await Promise.all([startDynamoDbLocal(), startSqs(), startFakeKube(), startFakeGitHub()]);
  useDynamoDbLocal(dynamo.endpoint);
  sqs.useEnv();
  resetAwsClients();
});

afterAll(async () => {
  resetAwsClients();
  await Promise.all([dynamo?.stop(), sqs?.stop(), kube?.stop(), gh?.stop()]);
});

const kubeCalls: FakeKube['calls'] = [];
beforeEach(() => {
  kubeCalls.push(...kube.calls);
  kube.reset();
  gh.reset();
});

const QUEUES = ['small', 'large', 'gpu'] as const;

/** Every line the scaler logged, as text, to look for leaked credentials. */
function capture(): ScalerLog & { text(): string } {
  const lines: string[] = [];
  const add = (level: string) => (message: string, extra: Record<string, unknown>) =>
    void lines.push(`${level} ${message} ${JSON.stringify(extra)}`);
  return {
    debug: add('debug'),
    info: add('info'),
    warn: add('warn'),
    error: add('error'),
    text: () => lines.join('\n'),
  };
}

interface World {
  config: ScalerConfig;
  settings: ScalerSettings;
  ports: ScalerPorts;
  log: ReturnType<typeof capture>;
  webhook(jobId: number, labels: string[]): Promise<number>;
  tick(ports?: ScalerPorts): ReturnType<typeof tick>;
  limiter(queue: string): Promise<{ inFlight: number; intents: number }>;
  jobs(): V1Job[];
}

async function world(env: Record<string, string> = {}): Promise<World> {
  n++;
  const table = `gh-ledger-${n}`;
  const queue = await sqs.createQueue(`gh-events-${n}`, { maxReceiveCount: 3, visibilityTimeoutSeconds: 30 });
  await createLedgerTable(dynamo.endpoint, table);
  const config = loadScalerConfig({
    EVENTS_QUEUE_URL: queue.url,
    LEDGER_TABLE: table,
    KUBECONFIG: kube.kubeconfigPath,
    QUEUES: QUEUES.join(','),
    JOB_TEMPLATE: 'github',
    MAX_AGENTS: '10',
    KUBE_NAMESPACE: 'ci-agents',
    GITHUB_APP_ID: String(gh.appId),
    GITHUB_APP_PRIVATE_KEY: gh.privateKey,
    GITHUB_RUNNER_OWNER: 'acme',
    GITHUB_API_URL: gh.url,
    ...env,
  });
  const log = capture();
  const { metrics: _metrics, ...wired } = await createPorts(config, log);
  const ports: ScalerPorts = wired;
  const settings = scalerSettings(config);
  const webhookConfig = loadWebhookConfig({
    EVENTS_QUEUE_URL: queue.url,
    QUEUES: QUEUES.join(','),
    JOB_TEMPLATE: 'github',
    GITHUB_WEBHOOK_SECRET: GITHUB_SECRET,
  });
  const handler = createWebhookHandler({
    config: webhookConfig,
    queue: createEventsQueue(webhookConfig.eventsQueueUrl),
    secrets: new SecretStore(webhookConfig.secrets),
  });
  const queued = workflowJobExamples().find((e) => e.action === 'queued' && e.workflow_job.status === 'queued');
  if (!queued) throw new Error('no queued workflow_job example');
  const limiterStore = new DynamoLimiterStore({ tableName: table });
  return {
    config,
    settings,
    ports,
    log,
    async webhook(jobId, labels) {
      const at = new Date().toISOString();
      const payload = {
        ...queued,
        workflow_job: { ...queued.workflow_job, id: jobId, labels, created_at: at, started_at: at },
      };
      const res = await handler(githubRequest(payload, { delivery: `delivery-${jobId}` }));
      return res.statusCode;
    },
    tick: (p = ports) => tick(p, settings, { waitSeconds: 0, deadline: Date.now() + 20_000 }),
    async limiter(q) {
      const s = await limiterStore.snapshot();
      return {
        inFlight: s.limiters.find((l) => l.queue === q)?.inFlight ?? 0,
        intents: s.dispatches.filter((d) => d.queue === q && d.status === 'intent').length,
      };
    },
    jobs: () => kube.jobs(config.namespace),
  };
}

const LABELS: Record<(typeof QUEUES)[number], string[]> = {
  small: ['self-hosted', 'linux', 'x64', 'small'],
  large: ['self-hosted', 'large'],
  gpu: ['self-hosted', 'linux', 'gpu'],
};

/** The queue's configurations from its Secret, by completion index. */
function configsOf(job: V1Job, namespace: string): Record<string, string> {
  const secret = kube.secrets(namespace).find((s) => s.metadata.name === jitSecretName(job.metadata?.name ?? ''));
  if (!secret) throw new Error(`no secret for ${job.metadata?.name}`);
  return Object.fromEntries(
    Object.entries(secret.data as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]),
  );
}

describe('GitHub just-in-time runners: webhook -> scaler -> Secret + Job', () => {
  it('a burst across queues with different label sets: one Job and one owned Secret per queue, one GitHub call per agent', async () => {
    const w = await world();
    const burst = { small: 5, large: 3, gpu: 2 };
    let id = 5_000_000;
    const statuses = await Promise.all(
      Object.entries(burst).flatMap(([q, count]) =>
        Array.from({ length: count }, () => w.webhook(id++, LABELS[q as keyof typeof LABELS])),
      ),
    );
    expect(statuses.every((s) => s === 202)).toBe(true);

    const report = await w.tick();
    expect(report.errors).toEqual([]);
    const jobs = w.jobs();
    expect(jobs).toHaveLength(3);
    for (const job of jobs) {
      const queue = job.metadata?.annotations?.['ci-autoscaler/queue'] as keyof typeof burst;
      const count = burst[queue];
      expect(job.spec).toMatchObject({ completions: count, parallelism: count, completionMode: 'Indexed' });

      // ONE Secret per Job, owned by it, one key per completion index.
      const name = jitSecretName(job.metadata?.name ?? '');
      const secret = kube.secrets(w.config.namespace).find((s) => s.metadata.name === name);
      expect(secret?.metadata.ownerReferences).toEqual([
        {
          apiVersion: 'batch/v1',
          kind: 'Job',
          name: job.metadata?.name,
          uid: job.metadata?.uid,
          blockOwnerDeletion: false,
        },
      ]);
      const configs = configsOf(job, w.config.namespace);
      expect(Object.keys(configs).sort()).toEqual(Array.from({ length: count }, (_, i) => String(i)).sort());

      // Each configuration registers a distinct runner of ours with the queue's labels.
      const runners = Object.values(configs).map((c) => gh.runnerOf(c));
      expect(runners.every((r) => r !== undefined)).toBe(true);
      expect(new Set(runners.map((r) => r?.id)).size).toBe(count);
      for (const r of runners) {
        expect(r?.labels.map((l) => l.name)).toEqual(['self-hosted', 'linux', 'x64', queue]);
        expect(r?.runner_group_id).toBe(1);
        expect(parseRunnerName(r?.name ?? '')?.tag).toBe(runnerTag(w.config.ledgerTable));
      }

      // The pods: the Secret is mounted by the init container only; no configuration as a literal.
      const pod = job.spec?.template.spec;
      expect(pod?.volumes?.find((v) => v.name === 'jitconfig')?.secret?.secretName).toBe(name);
      expect(pod?.initContainers?.[0]?.volumeMounts?.some((m) => m.name === 'jitconfig')).toBe(true);
      expect(pod?.containers.some((c) => c.volumeMounts?.some((m) => m.name === 'jitconfig'))).toBe(false);
      const specText = JSON.stringify([job, kube.pods({ jobName: job.metadata?.name ?? '' })]);
      for (const c of Object.values(configs)) {
        expect(specText).not.toContain(c);
        expect(w.log.text()).not.toContain(c);
        expect(w.log.text()).not.toContain(gh.runnerOf(c)?.secretMarker);
      }
    }

    // GitHub calls: one generate-jitconfig per agent, plus one installation lookup and one token
    // (cached for the hour) and one runner list (the sweep, at most every 5 minutes).
    const agents = Object.values(burst).reduce((a, b) => a + b, 0);
    expect(gh.count()).toEqual({
      'GET /installation': 1,
      'POST /app/installations/{id}/access_tokens': 1,
      'POST /actions/runners/generate-jitconfig': agents,
      'GET /actions/runners': 1,
    });
    console.log(`GitHub calls for ${agents} agents in 3 queues: ${JSON.stringify(gh.count())}`);
    expect(gh.calls.filter((c) => c.path.includes('generate-jitconfig')).every((c) => c.auth === 'token')).toBe(true);
    expect(gh.calls.filter((c) => !c.path.includes('/actions/')).every((c) => c.auth === 'jwt')).toBe(true);

    // A second burst reuses the cached installation token: calls = agents, nothing else.
    gh.calls.length = 0;
    for (let i = 0; i < 4; i++) expect(await w.webhook(id++, LABELS.small)).toBe(202);
    await w.tick();
    expect(gh.count()).toEqual({ 'POST /actions/runners/generate-jitconfig': 4 });

    // Healthy agents need no pod list; one that fails at start has its Job's Failed pods listed
    // (back-off): the Role's pods list is used then.
    expect(kube.calls.some((c) => c.resource === 'pods')).toBe(false);
    const [first] = kube.pods({ namespace: w.config.namespace });
    kube.failPod(first?.metadata?.name ?? '', { exitCode: 1, namespace: w.config.namespace });
    await w.tick();
    expect(kube.lists.filter((l) => l.resource === 'pods').map((l) => l.fieldSelector)).toContain(
      'status.phase=Failed',
    );
    // Every grant but those only failures use (test/deploy/rbac.test.ts drives those), and the
    // pods delete that only a warm pool's stop of surplus agents uses (test/integration/scaler.test.ts).
    assertRbacCovers(kube.calls, {
      exhaustive: true,
      role: roleWithout(scalerRole(), [
        'batch/jobs:delete',
        'core/events:list',
        'core/secrets:delete',
        'core/pods:delete',
      ]),
    });
  });

  it('GitHub 5xx, 429 and a secondary rate limit: the intent waits for a later tick, no token leaks, nothing minted twice', async () => {
    const w = await world();
    let offset = 0;
    const now = () => Date.now() + offset;
    const api = createRunnersApi({
      appId: String(gh.appId),
      privateKey: async () => gh.privateKey,
      owner: { kind: 'org', org: 'acme' },
      apiUrl: gh.url,
      now,
    });
    const hooks = new JitRunners({
      api,
      cluster: w.ports.cluster,
      runnerGroupId: 1,
      isJitQueue: () => true,
      deployment: w.config.ledgerTable,
      log: w.log,
    });
    const ports: ScalerPorts = { ...w.ports, hooks: { github: hooks }, now };
    for (let i = 0; i < 4; i++) expect(await w.webhook(6_000_000 + i, LABELS.small)).toBe(202);

    // A secondary rate limit on one of the four calls: no Job, the 4 tokens stay reserved.
    gh.secondaryRateLimit('POST', 'generate-jitconfig', 1, 5);
    let report = await w.tick(ports);
    expect(w.jobs()).toHaveLength(0);
    expect(report.errors.join()).toMatch(/secondary rate limit/);
    expect(await w.limiter('small')).toEqual({ inFlight: 4, intents: 1 });
    expect(gh.runners()).toHaveLength(3);
    expect(w.log.text()).toMatch(/registration incomplete/);

    // Within retry-after: GitHub is not called at all.
    const before = gh.calls.length;
    await w.tick(ports);
    expect(gh.calls.length).toBe(before);
    expect(w.jobs()).toHaveLength(0);

    // After it: a 502, then a 429 (retry-after 30 s): still no Job, nothing leaks.
    offset = 6_000;
    gh.failNext('POST', 'generate-jitconfig', 502, 1);
    await w.tick(ports);
    gh.failNext('POST', 'generate-jitconfig', 429, 1);
    await w.tick(ports);
    expect(w.jobs()).toHaveLength(0);
    expect(await w.limiter('small')).toEqual({ inFlight: 4, intents: 1 });

    // Once GitHub answers: only the missing runner is registered, then the Job and its Secret.
    offset = 40_000;
    report = await w.tick(ports);
    expect(report.errors).toEqual([]);
    const jobs = w.jobs();
    expect(jobs).toHaveLength(1);
    expect(jobs[0]?.spec?.completions).toBe(4);
    expect(Object.keys(configsOf(jobs[0] as V1Job, w.config.namespace))).toHaveLength(4);
    expect(gh.runners()).toHaveLength(4);
    expect(gh.count()['POST /actions/runners/generate-jitconfig']).toBe(4 + 1 + 1 + 1);
    expect(await w.limiter('small')).toEqual({ inFlight: 4, intents: 0 });
  });

  it('the installation token is cached until 5 minutes before it expires; a repository owner uses the repo endpoints', async () => {
    gh.tokenLifetimeMs = 10 * 60_000;
    try {
      let offset = 0;
      const api = createRunnersApi({
        appId: String(gh.appId),
        privateKey: async () => gh.privateKey,
        owner: { kind: 'org', org: 'acme' },
        apiUrl: gh.url,
        now: () => Date.now() + offset,
      });
      const mint = (name: string) => api.generateJitConfig({ name, runnerGroupId: 1, labels: ['self-hosted'] });
      await mint('t-1');
      offset = 4 * 60_000;
      await mint('t-2');
      expect(gh.count()['POST /app/installations/{id}/access_tokens']).toBe(1);
      offset = 5 * 60_000 + 1_000;
      await mint('t-3');
      expect(gh.count()).toMatchObject({
        'GET /installation': 1,
        'POST /app/installations/{id}/access_tokens': 2,
        'POST /actions/runners/generate-jitconfig': 3,
      });
      expect(api.requests).toBe(6);
    } finally {
      gh.tokenLifetimeMs = 60 * 60_000;
    }
    // A repository the App is not installed on: a clear, non-retryable 404.
    const repo = createRunnersApi({
      appId: String(gh.appId),
      privateKey: async () => gh.privateKey,
      owner: { kind: 'repo', owner: 'acme', repo: 'widgets' },
      apiUrl: gh.url,
    });
    const err = await repo.generateJitConfig({ name: 'r', runnerGroupId: 1, labels: ['x'] }).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'GitHubApiError', status: 404, retryable: false });
    expect(gh.calls.at(-1)?.path).toBe('/repos/acme/widgets/installation');
  });

  it('the Secret exists before its Job (no pod waits on a missing Secret), then is owned by it', async () => {
    const w = await world();
    for (let i = 0; i < 2; i++) expect(await w.webhook(7_100_000 + i, LABELS.gpu)).toBe(202);
    kube.calls.length = 0;
    expect((await w.tick()).errors).toEqual([]);
    const order = kube.calls
      .filter((c) => c.verb !== 'list')
      .map((c) => `${c.verb} ${c.resource}${c.name ? ` ${c.name}` : ''}`);
    const job = w.jobs()[0]?.metadata?.name ?? '';
    expect(order).toEqual(['create secrets', 'create jobs', `patch secrets ${jitSecretName(job)}`]);
    expect(kube.secrets(w.config.namespace).map((x) => x.metadata.ownerReferences)).toEqual([
      [{ apiVersion: 'batch/v1', kind: 'Job', name: job, uid: w.jobs()[0]?.metadata?.uid, blockOwnerDeletion: false }],
    ]);
  });

  it('a Secret create that fails: no Job yet; the next tick creates the Secret, then the Job, with no new registration', async () => {
    const w = await world();
    for (let i = 0; i < 3; i++) expect(await w.webhook(7_000_000 + i, LABELS.gpu)).toBe(202);
    kube.failNext('POST', '/secrets', 503, 1);
    let report = await w.tick();
    expect(report.errors.join()).toMatch(/secret/);
    expect(w.jobs()).toHaveLength(0);
    expect(kube.secrets(w.config.namespace)).toHaveLength(0);
    expect(await w.limiter('gpu')).toEqual({ inFlight: 3, intents: 1 });
    const minted = gh.count()['POST /actions/runners/generate-jitconfig'];
    expect(minted).toBe(3);

    report = await w.tick();
    expect(report.errors).toEqual([]);
    expect(w.jobs()).toHaveLength(1);
    expect(kube.secrets(w.config.namespace)).toHaveLength(1);
    expect(gh.count()['POST /actions/runners/generate-jitconfig']).toBe(3);
    expect(await w.limiter('gpu')).toEqual({ inFlight: 3, intents: 0 });

    // The Job goes (TTL): its Secret goes with it.
    kube.deleteJobOutOfBand(w.jobs()[0]?.metadata?.name ?? '');
    expect(kube.secrets(w.config.namespace)).toHaveLength(0);
  });

  it('a crash between the Job and the ownerReference: the next tick (a new process) owns the Secret, nothing minted again', async () => {
    const w = await world();
    for (let i = 0; i < 2; i++) expect(await w.webhook(7_200_000 + i, LABELS.gpu)).toBe(202);
    kube.failNext('PATCH', '/secrets/', 503, 1);
    const report = await w.tick();
    expect(report.errors.join()).toMatch(/owner of secret/);
    expect(w.jobs()).toHaveLength(1);
    expect(kube.secrets(w.config.namespace).map((x) => x.metadata.ownerReferences)).toEqual([undefined]);
    expect(await w.limiter('gpu')).toEqual({ inFlight: 2, intents: 1 });
    const minted = gh.count()['POST /actions/runners/generate-jitconfig'];

    // A cold start: the new process knows nothing of the Secret it must adopt.
    const { metrics: _m, ...fresh } = await createPorts(w.config, w.log);
    expect((await w.tick(fresh)).errors).toEqual([]);
    expect(kube.secrets(w.config.namespace).map((x) => x.metadata.ownerReferences?.[0]?.name)).toEqual([
      w.jobs()[0]?.metadata?.name,
    ]);
    expect(gh.count()['POST /actions/runners/generate-jitconfig']).toBe(minted);
    expect(await w.limiter('gpu')).toEqual({ inFlight: 2, intents: 0 });
  });

  it('a Job create the server refuses (a template typo under Strict field validation): its Secret is deleted', async () => {
    const w = await world();
    expect(await w.webhook(7_300_000, LABELS.gpu)).toBe(202);
    kube.failNext('POST', '/jobs', 422, 1);
    const report = await w.tick();
    expect(report.errors.join()).toMatch(/create job .* HTTP 422/);
    expect(w.jobs()).toHaveLength(0);
    expect(kube.secrets(w.config.namespace)).toEqual([]);
  });

  it('the scaler lists pods for housekeeping only on a sweep, and only those of live Jobs with an ended agent', async () => {
    const w = await world();
    let now = Date.now();
    const hooks = new JitRunners({
      api: createRunnersApi({
        appId: String(gh.appId),
        privateKey: async () => gh.privateKey,
        owner: { kind: 'org', org: 'acme' },
        apiUrl: gh.url,
      }),
      cluster: w.ports.cluster,
      runnerGroupId: 1,
      isJitQueue: () => true,
      deployment: w.config.ledgerTable,
      log: w.log,
      sweepIntervalMs: 60_000,
    });
    const ports: ScalerPorts = { ...w.ports, hooks: { github: hooks }, now: () => now };
    for (let i = 0; i < 3; i++) expect(await w.webhook(9_000_000 + i, LABELS.large)).toBe(202);
    for (let i = 0; i < 2; i++) expect(await w.webhook(9_100_000 + i, LABELS.gpu)).toBe(202);
    await w.tick(ports);
    const large = w.jobs().find((j) => j.metadata?.annotations?.['ci-autoscaler/queue'] === 'large');
    kube.startAll();
    // One agent of `large` finished its CI job; `gpu`'s agents all run (no pod of theirs is listed).
    const [done] = kube.pods({ jobName: large?.metadata?.name ?? '' });
    kube.succeedPod(done?.metadata?.name ?? '');
    const podLists = async () => {
      const from = kube.lists.length;
      await w.tick(ports);
      kube.startAll(); // a healthy cluster: agents start at once (replacements the scaler creates too)
      return kube.lists.slice(from).filter((l) => l.resource === 'pods');
    };

    now += 60_000;
    expect(await podLists()).toEqual([
      {
        resource: 'pods',
        namespace: w.config.namespace,
        labelSelector: `app.kubernetes.io/managed-by=ci-agent-autoscaler,job-name in (${large?.metadata?.name})`,
        limit: 500,
        items: 3,
      },
    ]);
    // Between sweeps: no pod listed.
    for (let i = 0; i < 3; i++) {
      now += 10_000;
      expect(await podLists()).toEqual([]);
    }
    now += 30_000;
    expect(await podLists()).toHaveLength(1);
  });

  it('removes our offline runners whose pod is gone, keeps online, busy, pending and foreign ones', async () => {
    const w = await world();
    const hooks = w.ports.hooks?.github as JitRunners;
    for (let i = 0; i < 2; i++) expect(await w.webhook(8_000_000 + i, LABELS.large)).toBe(202);
    await w.tick();
    const job = w.jobs()[0] as V1Job;
    const runners = Object.values(configsOf(job, w.config.namespace)).map((c) => gh.runnerOf(c));
    const [r0, r1] = runners;
    if (!r0 || !r1) throw new Error('runners missing');
    // A runner of another deployment (other tag) and one outside the product.
    await createRunnersApi({
      appId: String(gh.appId),
      privateKey: async () => gh.privateKey,
      owner: { kind: 'org', org: 'acme' },
      apiUrl: gh.url,
    }).generateJitConfig({
      name: `${runnerTag('other-table')}-large-0123456789abcdef-0-abcd`,
      runnerGroupId: 1,
      labels: ['x'],
    });
    const foreign = gh.runners().find((r) => r.name.startsWith(runnerTag('other-table')));

    // Pods: index 0 fails before its runner connects, index 1 runs and its runner is online.
    kube.startAll(job.metadata?.name);
    const pods = kube.pods({ jobName: job.metadata?.name ?? '' });
    const pod0 = pods.find((p) => p.metadata?.labels?.['batch.kubernetes.io/job-completion-index'] === '0');
    kube.failPod(pod0?.metadata?.name ?? '');
    gh.setRunnerStatus(r1.id, 'online', true);
    const sweep = async () =>
      hooks.housekeeping({
        jobs: (await w.ports.cluster.listAgentJobs())
          .map((j) => w.ports.jobs.describe(j))
          .filter((j) => j !== undefined),
        dispatches: [],
        pods: (await w.ports.cluster.listAgentPods?.()) ?? [],
        now: Date.now() + 3_600_000 * ++sweeps,
      });
    let sweeps = 0;
    await sweep();
    // Orphaned at one sweep is only a suspect (a concurrent scaler may have just minted it).
    expect(gh.runners()).toHaveLength(3);
    await sweep();
    expect(
      gh
        .runners()
        .map((r) => r.id)
        .sort(),
    ).toEqual([r1.id, foreign?.id].sort());

    // Index 1 finishes: GitHub removes an ephemeral runner after its job; one that never took a
    // job stays offline: the next sweep removes it.
    gh.setRunnerStatus(r1.id, 'offline', false);
    kube.succeedAll(job.metadata?.name);
    await sweep();
    await sweep();
    expect(gh.runners().map((r) => r.id)).toEqual([foreign?.id]);
  });
});
