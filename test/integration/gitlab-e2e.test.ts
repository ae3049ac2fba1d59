/**
 * GitLab end to end, real protocols only: a signed Job Hook (as GitLab sends it: no job tags)
 * -> the webhook -> SQS (fauxqs) -> the scaler's drain, which looks the job's tag_list up in the
 * fake GitLab API over HTTP -> the ledger (DynamoDB Local) -> the agent Job in the fake
 * Kubernetes API, in the queue whose runners carry the job's tags.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DynamoRouteStore } from '../../functions/adapters/dynamodb/route-store.js';
import { createGitlabJobsApi } from '../../functions/adapters/gitlab/jobs-api.js';
import { SecretStore } from '../../functions/adapters/secrets/secret-store.js';
import { createEventsQueue } from '../../functions/adapters/sqs/events-queue.js';
import { queueOf } from '../../functions/core/agent-job.js';
import type { RouteStore } from '../../functions/core/stores.js';
import { createGitlabRouter } from '../../functions/scaler/gitlab-routes.js';
import type { ScalerLog } from '../../functions/scaler/ports.js';
import { tick } from '../../functions/scaler/scaler.js';
import { createPorts, scalerSettings } from '../../functions/scaler/wiring.js';
import { resetAwsClients } from '../../functions/shared/aws.js';
import { loadScalerConfig, loadWebhookConfig } from '../../functions/shared/config.js';
import { createWebhookHandler } from '../../functions/webhook/app.js';
import { FakeGitlab } from '../../tools/fakes/gitlab.js';
import { type FakeKube, startFakeKube } from '../../tools/fakes/kube/index.js';
import { createLedgerTable, type DynamoDbLocal, startDynamoDbLocal, useDynamoDbLocal } from '../support/dynamodb.js';
import { type SqsHarness, startSqs } from '../support/sqs.js';
import { GITLAB_TOKEN, gitlabJob, gitlabRequest } from '../support/webhook-fixtures.js';

let dynamo: DynamoDbLocal;
let sqs: SqsHarness;
let kube: FakeKube;
let gitlab: FakeGitlab;
let n = 0;
const errors: unknown[] = [];
const log: ScalerLog = { debug() {}, info() {}, warn() {}, error: (m, e) => void errors.push([m, e]) };

beforeAll(async () => {
  [dynamo, sqs, kube, gitlab] = await Promise.all([
    startDynamoDbLocal(),
    startSqs(),
    startFakeKube(),
    new FakeGitlab().start(),
  ]);
  useDynamoDbLocal(dynamo.endpoint);
  sqs.useEnv();
  resetAwsClients();
});

afterAll(async () => {
  resetAwsClients();
  await Promise.all([dynamo?.stop(), sqs?.stop(), kube?.stop(), gitlab?.stop()]);
});

beforeEach(() => {
  gitlab.reset();
  kube.reset();
  errors.length = 0;
});

async function stack(options: { pauseBaseMs?: number; routeStore?: (table: string) => RouteStore } = {}) {
  n++;
  const queue = await sqs.createQueue(`gl-events-${n}`, { maxReceiveCount: 5, visibilityTimeoutSeconds: 1 });
  const table = `gl-ledger-${n}`;
  await createLedgerTable(dynamo.endpoint, table);
  const env = {
    EVENTS_QUEUE_URL: queue.url,
    QUEUES: 'docker,gpu,shared',
    JOB_TEMPLATE: 'gitlab',
    QUEUE_OVERRIDES: JSON.stringify({
      docker: { runnerTags: ['docker', 'linux'] },
      gpu: { runnerTags: ['gpu', 'linux'], runnerTokenSecret: 'gitlab-runner-gpu' },
      shared: { runUntagged: true },
    }),
    GITLAB_WEBHOOK_TOKEN: GITLAB_TOKEN,
    GITLAB_API_URL: gitlab.url,
    GITLAB_API_TOKEN: gitlab.token,
    LEDGER_TABLE: table,
    KUBECONFIG: kube.kubeconfigPath,
    KUBE_NAMESPACE: `gl-${n}`,
  };
  const webhookConfig = loadWebhookConfig(env);
  const webhook = createWebhookHandler({
    config: webhookConfig,
    queue: createEventsQueue(webhookConfig.eventsQueueUrl),
    secrets: new SecretStore(webhookConfig.secrets),
  });
  const config = loadScalerConfig(env);
  const { metrics: _metrics, ...wired } = await createPorts(config, log);
  const ports = {
    ...wired,
    // The same router as wired, with a shorter back-off or a faulty route store, for the fault tests.
    ...(options.pauseBaseMs === undefined && options.routeStore === undefined
      ? {}
      : {
          routers: {
            gitlab: createGitlabRouter({
              api: createGitlabJobsApi({ url: gitlab.url, token: async () => gitlab.token }),
              store: options.routeStore?.(table) ?? new DynamoRouteStore({ tableName: table }),
              routing: config.routing,
              now: Date.now,
              ...(options.pauseBaseMs === undefined ? {} : { pauseBaseMs: options.pauseBaseMs }),
            }),
          },
        }),
  };
  const settings = scalerSettings(config);
  return {
    webhook,
    tick: () => tick(ports, settings, { waitSeconds: 0, deadline: Date.now() + 20_000 }),
    jobs: () => kube.jobs(config.namespace),
    agents: (q: string) =>
      kube
        .jobs(config.namespace)
        .filter((j) => queueOf(j) === q)
        .reduce((sum, j) => sum + (j.spec?.parallelism ?? 0), 0),
  };
}

const hook = (id: number, extra: Record<string, unknown> = {}) =>
  gitlabRequest(gitlabJob({ build_id: id, build_created_at: new Date().toISOString(), ...extra }), {
    uuid: `uuid-${id}-${String(extra.build_status ?? 'pending')}`,
  });

describe("GitLab: from a signed Job Hook to the agent Job, by the job's real tags", () => {
  it('a burst across queues with different tag sets lands each job where runners can take it', async () => {
    const s = await stack();
    const tags: Record<number, string[]> = {
      101: ['docker'],
      102: ['docker', 'linux'],
      103: ['gpu'],
      104: [],
      105: ['docker', 'gpu'], // no queue's runners carry both: counted nowhere
    };
    for (const [id, t] of Object.entries(tags)) gitlab.addJob({ projectId: '380', jobId: id, tags: t });
    for (const id of Object.keys(tags)) {
      const res = await s.webhook(hook(Number(id)));
      expect(res.statusCode).toBe(202);
      expect(JSON.parse(res.body)).toMatchObject({ status: 'accepted' });
    }
    const report = await s.tick();
    expect(report.drain).toMatchObject({ received: 5, applied: 4, unserved: 1, failed: 0 });
    expect([s.agents('docker'), s.agents('gpu'), s.agents('shared')]).toEqual([2, 1, 1]);
    // The gpu queue's runners use its own token Secret.
    const gpu = s.jobs().find((j) => queueOf(j) === 'gpu');
    const token = gpu?.spec?.template.spec?.containers[0]?.env?.find((e) => e.name === 'CI_SERVER_TOKEN');
    expect(token?.valueFrom?.secretKeyRef).toEqual({ name: 'gitlab-runner-gpu', key: 'token' });
    // One lookup per CI job; later events of the same jobs reuse the stored route.
    for (const id of [101, 103]) {
      await s.webhook(hook(id, { build_status: 'running', build_started_at: new Date().toISOString() }));
    }
    expect((await s.tick()).drain).toMatchObject({ applied: 2, failed: 0 });
    for (const id of Object.keys(tags)) expect(gitlab.lookups(id), id).toBe(1);
  });

  it('GitLab answering 429 then 500 loses nothing: the event waits in SQS, then provisions', async () => {
    const s = await stack({ pauseBaseMs: 500 });
    gitlab.addJob({ projectId: '380', jobId: '201', tags: ['docker'] });
    gitlab.failNext(1, 429, 1);
    gitlab.failNext(1, 500);
    expect((await s.webhook(hook(201))).statusCode).toBe(202);
    expect((await s.tick()).drain).toMatchObject({ failed: 1, applied: 0 });
    expect(s.jobs()).toEqual([]);
    expect(errors).toEqual([
      [
        'event not routed; it stays in the queue',
        expect.objectContaining({ error: expect.stringContaining('HTTP 429') }),
      ],
    ]);
    let agents = 0;
    for (let i = 0; i < 15 && agents === 0; i++) {
      await new Promise((r) => setTimeout(r, 1_100)); // visibility timeout and Retry-After
      await s.tick();
      agents = s.agents('docker');
    }
    expect(agents).toBe(1);
    // Each delivery was a real attempt: 429, 500, then the answer (the message was hidden
    // while the API was paused, so no delivery was spent waiting).
    expect(gitlab.lookups('201')).toBe(3);
  });

  it('DynamoDB failing on the route read loses nothing: the event waits in SQS, then provisions', async () => {
    let down = true;
    const s = await stack({
      routeStore: (table) => {
        const real = new DynamoRouteStore({ tableName: table });
        const unreachable = new DynamoRouteStore({ tableName: `${table}-gone` });
        return {
          getMany: (jobs) => (down ? unreachable : real).getMany(jobs),
          putMany: (routes, now) => (down ? unreachable : real).putMany(routes, now),
        };
      },
    });
    gitlab.addJob({ projectId: '380', jobId: '301', tags: ['docker'] });
    expect((await s.webhook(hook(301))).statusCode).toBe(202);
    expect((await s.tick()).drain).toMatchObject({ failed: 1, applied: 0 });
    expect(s.jobs()).toEqual([]);
    expect(errors).toEqual([
      [
        'event not routed; it stays in the queue',
        expect.objectContaining({ error: expect.stringMatching(/route of gitlab job 301 unreadable/) }),
      ],
    ]);
    // Never guessed: GitLab was not even asked while the stored route could not be read.
    expect(gitlab.lookups('301')).toBe(0);
    down = false;
    let agents = 0;
    for (let i = 0; i < 10 && agents === 0; i++) {
      await new Promise((r) => setTimeout(r, 1_100)); // the visibility timeout
      await s.tick();
      agents = s.agents('docker');
    }
    expect(agents).toBe(1);
    expect(gitlab.lookups('301')).toBe(1);
  });
});
