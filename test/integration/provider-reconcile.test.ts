/**
 * Issue 21 point 4: no CI job is lost when a webhook delivery fails. GitHub does not redeliver a
 * failed delivery and GitLab does not retry one ("Handling failed webhook deliveries"; GitLab
 * webhooks docs), so the scaler's provider-reconcile stage recovers them: GitHub's documented
 * recipe (list the hook's deliveries, redeliver the events none of whose deliveries succeeded:
 * `GET /orgs/{org}/hooks/{hook_id}/deliveries`, `POST .../deliveries/{delivery_id}/attempts`),
 * GitLab's pending jobs of the served projects (`GET /projects/:id/jobs?scope[]=pending`).
 *
 * Real pieces: the webhook handler, the SQS emulator (fauxqs) between webhook and scaler, the
 * GitHub App client (@octokit/auth-app, @octokit/request) against the fake GitHub API, the
 * GitLab client against the fake GitLab API, the scaler's tick. In memory: ledger and limiter
 * (their DynamoDB twins pass the same contract), the cluster (Jobs are recorded).
 */
import type { V1Job } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createBuildkiteBuildsApi } from '../../functions/adapters/buildkite/builds-api.js';
import { createRunnersApi } from '../../functions/adapters/github/runners-api.js';
import { createGitlabJobsApi } from '../../functions/adapters/gitlab/jobs-api.js';
import { jobFactory } from '../../functions/adapters/kubernetes/job-factory.js';
import { createEventsQueue, eventSource, sendEvent } from '../../functions/adapters/sqs/events-queue.js';
import { gitlab as gitlabProvider } from '../../functions/core/providers/gitlab.js';
import { defaultQueueAgents, type Routing } from '../../functions/core/routing.js';
import type { ClusterPort, ScalerPorts, ScalerSettings } from '../../functions/scaler/ports.js';
import {
  buildkiteScheduled,
  createProviderReconciler,
  githubRedeliveries,
  gitlabPending,
} from '../../functions/scaler/provider-reconcile.js';
import { tick } from '../../functions/scaler/scaler.js';
import { createWebhookHandler } from '../../functions/webhook/app.js';
import { type FakeGitHub, startFakeGitHub } from '../../tools/fakes/github/index.js';
import { FakeGitlab } from '../../tools/fakes/gitlab.js';
import { InMemoryLedgerStore } from '../../tools/fakes/memory/ledger-store.js';
import { InMemoryLimiterStore } from '../../tools/fakes/memory/limiter-store.js';
import { FakeBuildkite, type FakeBuildkiteJob } from '../support/fake-buildkite.js';
import { type SqsHarness, startSqs, type TestQueue } from '../support/sqs.js';
import { GITHUB_SECRET, githubRequest, gitlabJob, workflowJobExamples } from '../support/webhook-fixtures.js';

const HOOK_ID = 4_242;
const PERIOD_MS = 120_000;
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const template: V1Job = {
  apiVersion: 'batch/v1',
  kind: 'Job',
  spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'agent', image: 'agent' }] } } },
};

let sqs: SqsHarness;
let queue: TestQueue;
let github: FakeGitHub;

beforeAll(async () => {
  sqs = await startSqs();
  sqs.useEnv();
  queue = await sqs.createQueue('events');
  github = await startFakeGitHub({ installedOn: ['acme'] });
}, 120_000);

afterEach(async () => {
  await sqs.purge(queue.url);
  github.reset();
});

afterAll(async () => {
  await github?.stop();
  await sqs?.stop();
});

/** The scaler over the SQS queue, with in-memory stores and a cluster that records its Jobs. */
function scaler(routing: Routing, providers: ScalerPorts['providers'], clock: { now: number }) {
  const jobs: V1Job[] = [];
  const cluster: ClusterPort = {
    listAgentJobs: async () => structuredClone(jobs),
    createJob: async (job) => {
      jobs.push(structuredClone(job));
      return 'created';
    },
  };
  const ports: ScalerPorts = {
    events: eventSource(createEventsQueue(queue.url)),
    ledger: new InMemoryLedgerStore(),
    limiter: new InMemoryLimiterStore(),
    cluster,
    jobs: jobFactory({
      namespace: 'ci',
      ttlSecondsAfterFinished: 600,
      activeDeadlineSeconds: 600,
      templateFor: () => template,
    }),
    log: quiet,
    now: () => clock.now,
    ...(providers ? { providers } : {}),
  };
  const queues = routing.queues.map((q) => q.queue);
  const settings: ScalerSettings = {
    queues,
    limits: Object.fromEntries(queues.map((q) => [q, { minAgents: 0, maxAgents: 10 }])),
    intentLeaseMs: 60_000,
  };
  const agents = () => jobs.reduce((n, j) => n + (j.spec?.completions ?? 0), 0);
  const once = () => tick(ports, settings, { waitSeconds: 0, deadline: clock.now + 30_000 });
  return { ports, once, agents };
}

describe('GitHub: a queued delivery answered 503 is redelivered and gets its agent', () => {
  const routing: Routing = { queues: [defaultQueueAgents('default', 'github')], buildkiteDefaultQueue: 'default' };

  it('webhook 503 (SQS down) -> the job gets an agent within the reconcile period; nothing is provisioned twice', async () => {
    // The webhook, recording into SQS, which is down for the first delivery.
    let sqsDown = true;
    const webhook = createWebhookHandler({
      config: { queues: ['default'], routing, maxBodyBytes: 1 << 20, buildkiteReplayWindowSeconds: 300 },
      queue: {
        sendEvent: async (event) => {
          if (sqsDown) throw Object.assign(new Error('Service Unavailable'), { name: 'ServiceUnavailable' });
          return sendEvent(queue.url, event);
        },
      },
      secrets: {
        enabled: () => true,
        refreshable: () => false,
        get: async () => GITHUB_SECRET,
        refresh: async () => undefined,
      },
    });
    github.addHook(HOOK_ID, 'acme', async ({ event, guid, payload }) => {
      const answer = await webhook(githubRequest(payload, { event, delivery: guid }));
      return answer.statusCode;
    });
    const api = createRunnersApi({
      appId: String(github.appId),
      privateKey: async () => github.privateKey,
      owner: { kind: 'org', org: 'acme' },
      apiUrl: github.url,
    });
    const clock = { now: Date.now() };
    const { once, agents } = scaler(
      routing,
      createProviderReconciler({ sources: [githubRedeliveries({ api, hookId: HOOK_ID })], periodMs: PERIOD_MS }),
      clock,
    );

    // A job is queued; GitHub's one delivery gets our 503 while SQS is down.
    const example = workflowJobExamples().find((e) => e.action === 'queued' && e.workflow_job.status === 'queued')!;
    const payload = {
      ...example,
      workflow_job: {
        ...example.workflow_job,
        id: 31_337,
        labels: ['self-hosted'],
        created_at: new Date().toISOString(),
      },
    };
    const first = await github.sendEvent(HOOK_ID, 'workflow_job', payload);
    expect(first.status_code).toBe(503);
    sqsDown = false;
    const startedAt = clock.now;

    // The scaler's next ticks: the reconcile asks GitHub again, the redelivery reaches SQS.
    await once();
    await github.settled();
    clock.now += 2_000;
    await once();
    expect(agents()).toBe(1);
    expect(clock.now - startedAt).toBeLessThan(PERIOD_MS);
    expect(github.deliveries(HOOK_ID).map((d) => [d.redelivery, d.status_code])).toEqual([
      [true, 202],
      [false, 503],
    ]);

    // Later periods: the event was delivered, nothing is asked again; a duplicate redelivery
    // (another scaler invocation asking too) is the same event: no second agent.
    for (let i = 0; i < 3; i++) {
      clock.now += PERIOD_MS;
      await once();
      await github.settled();
    }
    await api.redeliver?.(HOOK_ID, first.id);
    await github.settled();
    clock.now += 2_000;
    await once();
    expect(agents()).toBe(1);
    // Bounded: one list call per period (one page here), one redelivery in all.
    const counts = github.count();
    expect(counts['GET /orgs/acme/hooks/4242/deliveries']).toBe(4);
    expect(counts['POST /orgs/acme/hooks/4242/deliveries/{id}/attempts'] ?? 0).toBeLessThanOrEqual(2);
  }, 60_000);
});

describe('GitLab: a pending job whose delivery was lost is recovered from the jobs list', () => {
  const routing: Routing = {
    queues: [{ ...defaultQueueAgents('docker', 'gitlab'), runnerTags: ['docker'] }],
    buildkiteDefaultQueue: 'default',
  };

  it('one agent for a pending job no webhook announced; none more when it is listed again or its delivery arrives late', async () => {
    const gitlab = await new FakeGitlab('glpat-test').start();
    try {
      gitlab.addJob({ projectId: '380', jobId: '1977', tags: ['docker'] });
      gitlab.addJob({ projectId: '380', jobId: '1978', tags: ['gpu'] });
      gitlab.addJob({ projectId: '381', jobId: '2001', tags: ['docker'] });
      const api = createGitlabJobsApi({ url: gitlab.url, token: async () => 'glpat-test' });
      const clock = { now: Date.now() };
      const { ports, once, agents } = scaler(
        routing,
        createProviderReconciler({
          sources: [gitlabPending({ api, projects: ['380'], routing })],
          periodMs: PERIOD_MS,
        }),
        clock,
      );
      await once();
      // 1977 (docker, project 380): ours; 1978 needs gpu runners; project 381 is not served.
      expect(agents()).toBe(1);
      expect(gitlab.calls.filter((c) => c.path.endsWith('/jobs'))).toHaveLength(1);
      // The next period lists it again (still pending): the same job, no second agent.
      clock.now += PERIOD_MS;
      await once();
      expect(agents()).toBe(1);
      // The lost delivery arrives after all (the webhook's event, routed to docker by its tags).
      const late = gitlabProvider.parse(
        { body: Buffer.from(JSON.stringify(gitlabJob())), headers: { 'x-gitlab-event': 'Job Hook' } },
        { queues: ['docker'], routing, receivedAt: new Date(clock.now) },
      );
      if (late.kind !== 'event') throw new Error('not an event');
      expect(await ports.ledger.apply([{ ...late.event, queue: 'docker' }], new Date(clock.now))).toEqual([
        { eventId: late.event.id, result: 'noop' },
      ]);
      clock.now += 2_000;
      await once();
      expect(agents()).toBe(1);
    } finally {
      await gitlab.stop();
    }
  }, 60_000);
});

describe('Buildkite: a scheduled job whose delivery was lost is recovered from the builds list', () => {
  const cluster = '3a6e4c1b-5d2f-4e8a-9b7c-1d2e3f4a5b6c';
  const routing: Routing = {
    queues: [{ ...defaultQueueAgents('default', 'buildkite'), agentTags: ['queue=default', 'os=linux'] }],
    buildkiteDefaultQueue: 'default',
  };

  it('one agent per scheduled job our queues can take, in our cluster; none more on the next period', async () => {
    const buildkite = await new FakeBuildkite().start();
    try {
      const job = (id: string, rules: string[], state = 'scheduled'): FakeBuildkiteJob => ({
        id,
        type: 'script',
        state,
        agent_query_rules: rules,
        scheduled_at: new Date().toISOString(),
      });
      buildkite.builds.push(
        {
          id: 'b-42',
          number: 42,
          state: 'running',
          pipeline: { slug: 'widgets', cluster_id: cluster },
          jobs: [
            job('0190a4b8-0000-4000-8000-000000000001', ['queue=default']),
            job('0190a4b8-0000-4000-8000-000000000002', ['queue=default'], 'running'),
            job('0190a4b8-0000-4000-8000-000000000003', ['queue=gpu']),
            { ...job('0190a4b8-0000-4000-8000-000000000004', []), type: 'waiter' },
          ],
        },
        {
          id: 'b-43',
          number: 43,
          state: 'scheduled',
          pipeline: { slug: 'other', cluster_id: '00000000-0000-4000-8000-000000000000' },
          jobs: [job('0190a4b8-0000-4000-8000-000000000005', ['queue=default'])],
        },
        {
          id: 'b-41',
          number: 41,
          state: 'passed',
          pipeline: { slug: 'widgets', cluster_id: cluster },
          jobs: [job('0190a4b8-0000-4000-8000-000000000006', ['queue=default'], 'passed')],
        },
      );
      const api = createBuildkiteBuildsApi({
        url: buildkite.url,
        organization: 'acme',
        token: async () => buildkite.token,
      });
      const clock = { now: Date.now() };
      const { once, agents } = scaler(
        routing,
        createProviderReconciler({
          sources: [buildkiteScheduled({ api, routing, clusters: [cluster] })],
          periodMs: PERIOD_MS,
        }),
        clock,
      );
      await once();
      expect(agents()).toBe(1);
      expect(buildkite.calls).toEqual([
        { path: '/v2/organizations/acme/builds?state[]=scheduled&state[]=running&per_page=100', status: 200 },
      ]);
      clock.now += PERIOD_MS;
      await once();
      expect(agents()).toBe(1);
      expect(buildkite.calls).toHaveLength(2);
    } finally {
      await buildkite.stop();
    }
  }, 60_000);
});
