/**
 * From a signed webhook to the ledger, through the real pieces: the webhook handler sends to
 * fauxqs, the scaler's receive parses the message, the DynamoDB ledger (DynamoDB Local, table
 * from infra/aws/ledger-table.yml) applies it. Oversized or odd optional fields must never
 * strand a CI job: the event is accepted, fits the queue, and is applied.
 */

import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoLedgerStore } from '../../functions/adapters/dynamodb/ledger-store.js';
import { SecretStore } from '../../functions/adapters/secrets/secret-store.js';
import { createEventsQueue } from '../../functions/adapters/sqs/events-queue.js';
import { EVENT_BOUNDS } from '../../functions/core/job-event.js';
import { createGitlabRouter } from '../../functions/scaler/gitlab-routes.js';
import { loadWebhookConfig } from '../../functions/shared/config.js';
import { createWebhookHandler, type WebhookEvent } from '../../functions/webhook/app.js';
import { InMemoryRouteStore } from '../../tools/fakes/memory/route-store.js';
import { at, providerTime } from '../support/clock.js';
import { createLedgerTable, type DynamoDbLocal, startDynamoDbLocal } from '../support/dynamodb.js';
import { type SqsHarness, startSqs } from '../support/sqs.js';
import { SQS_LEGACY_MAX_MESSAGE_BYTES } from '../support/sqs-contract.js';
import {
  BUILDKITE_SECRET,
  buildkiteJob,
  buildkitePayload,
  buildkiteRequest,
  GITHUB_SECRET,
  GITLAB_TOKEN,
  githubRequest,
  gitlabJob,
  gitlabRequest,
  workflowJobExamples,
} from '../support/webhook-fixtures.js';

let sqs: SqsHarness;
let dynamo: DynamoDbLocal;
let doc: DynamoDBDocumentClient;
let tables = 0;

beforeAll(async () => {
  [sqs, dynamo] = await Promise.all([startSqs(), startDynamoDbLocal()]);
  sqs.useEnv();
  doc = DynamoDBDocumentClient.from(
    new DynamoDBClient({
      endpoint: dynamo.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
      maxAttempts: 1,
    }),
  );
}, 60_000);

afterAll(async () => {
  doc?.destroy();
  await Promise.all([sqs?.stop(), dynamo?.stop()]);
});

/** A webhook on a fresh queue (MaximumMessageSize as given) and a fresh ledger table. */
async function pipeline(maxMessageBytes?: number) {
  const n = ++tables;
  const queue = await sqs.createQueue(`events-${n}`, {
    dlq: false,
    ...(maxMessageBytes === undefined ? {} : { attributes: { MaximumMessageSize: String(maxMessageBytes) } }),
  });
  const tableName = `ledger-${n}`;
  await createLedgerTable(dynamo.endpoint, tableName);
  const config = loadWebhookConfig({
    EVENTS_QUEUE_URL: queue.url,
    QUEUES: 'default,ubuntu-latest,gitlab',
    QUEUE_OVERRIDES: JSON.stringify({ 'ubuntu-latest': { provider: 'github' }, gitlab: { provider: 'gitlab' } }),
    BUILDKITE_WEBHOOK_SECRET: BUILDKITE_SECRET,
    GITHUB_WEBHOOK_SECRET: GITHUB_SECRET,
    GITLAB_WEBHOOK_TOKEN: GITLAB_TOKEN,
    WEBHOOK_MAX_BODY_BYTES: String(2 * 1024 * 1024),
  });
  const events = createEventsQueue(queue.url);
  const ledger = new DynamoLedgerStore({ tableName, client: doc });
  const webhook = createWebhookHandler({ config, queue: events, secrets: new SecretStore(config.secrets) });
  const router = createGitlabRouter({
    api: { jobTags: async () => ['gitlab'] },
    store: new InMemoryRouteStore(),
    routing: config.routing,
    now: Date.now,
  });
  return {
    /** Delivers the request; then drains the queue into the ledger as the scaler does. */
    async deliver(request: WebhookEvent) {
      const res = await webhook(request);
      const received = await events.receiveEvents({ max: 10 });
      const queued = received.flatMap((m) => (m.event === undefined ? [] : [m.event]));
      // GitLab events get their queue from the job's tags, as in the scaler's drain.
      const routes = await router.resolve(queued);
      const valid = routes.flatMap((r) => ('event' in r ? [r.event] : []));
      const outcomes = await ledger.apply(valid, new Date());
      return { res, received, outcomes, ledger };
    },
  };
}

const huge = (n: number, c = 'w') => c.repeat(n);

/**
 * The fixture's job, dated from the real clock: the ledger's TTL is the event time plus the
 * retention, and DynamoDB Local's sweeper deletes items past it (test/support/clock.ts).
 */
const recentBuildkiteJob = (overrides: Record<string, unknown> = {}) =>
  buildkiteJob({
    created_at: providerTime(-61),
    scheduled_at: providerTime(-60),
    runnable_at: providerTime(-60),
    ...overrides,
  });

describe('oversized optional fields never strand a job', () => {
  it('Buildkite: a 300 KB pipeline slug on a 256 KiB queue is accepted, recorded and applied', async () => {
    const { deliver } = await pipeline(SQS_LEGACY_MAX_MESSAGE_BYTES);
    const payload = buildkitePayload('job.scheduled', recentBuildkiteJob());
    (payload.pipeline as Record<string, unknown>).slug = huge(300_000);
    const { res, received, outcomes, ledger } = await deliver(buildkiteRequest(payload));
    expect(res.statusCode).toBe(202); // was 503 for ever: the message did not fit the queue
    expect(received).toHaveLength(1);
    expect(received[0]?.error).toBeUndefined();
    // SQS's SentTimestamp, on our clock: the scaler's lag is measured from it.
    expect(Math.abs((received[0]?.sentAt ?? 0) - Date.now())).toBeLessThan(60_000);
    expect(outcomes.map((o) => o.result)).toEqual(['applied']);
    const record = await ledger.get({ provider: 'buildkite', jobId: String(buildkiteJob().id) });
    expect(record).toMatchObject({ state: 'scheduled', queue: 'default' });
    expect(record?.trace?.pipeline).toHaveLength(EVENT_BOUNDS.traceChars);
  });

  it('Buildkite: trace fields over 400 KB in all on a 1 MiB queue are applied (item far below 400 KB)', async () => {
    const { deliver } = await pipeline(); // fauxqs and SQS default: 1 MiB
    const payload = buildkitePayload(
      'job.scheduled',
      recentBuildkiteJob({ web_url: `https://buildkite.com/${huge(140_000)}` }),
    );
    Object.assign(payload.pipeline as Record<string, unknown>, { slug: huge(140_000), repository: huge(140_000) });
    const { res, outcomes, ledger } = await deliver(buildkiteRequest(payload));
    expect(res.statusCode).toBe(202);
    // Was 'failed' ("Item size has exceeded the maximum allowed size"): the event went to the
    // dead-letter queue and the job never got an agent.
    expect(outcomes).toEqual([expect.objectContaining({ result: 'applied' })]);
    const record = await ledger.get({ provider: 'buildkite', jobId: String(buildkiteJob().id) });
    expect(JSON.stringify(record).length).toBeLessThan(8 * 1024);
  });

  it('GitHub: a workflow name SQS cannot carry (U+FFFF) and a huge repository name', async () => {
    const { deliver } = await pipeline();
    const example = workflowJobExamples().find((e) => e.action === 'queued' && e.workflow_job.status === 'queued');
    const payload = {
      ...example,
      repository: { ...example?.repository, full_name: huge(200_000, 'ü') },
      workflow_job: {
        ...example?.workflow_job,
        workflow_name: 'CI \uffff 🚀',
        created_at: at(-60),
        started_at: at(-60),
      },
    };
    const { res, outcomes, ledger } = await deliver(githubRequest(payload));
    expect(res.statusCode).toBe(202); // was 503 for ever: SQS refused the message's characters
    expect(outcomes.map((o) => o.result)).toEqual(['applied']);
    const record = await ledger.get({ provider: 'github', jobId: String(example?.workflow_job.id) });
    expect(record?.trace).toMatchObject({ pipeline: 'CI \uffff 🚀' });
    expect(record?.trace?.repository).toHaveLength(EVENT_BOUNDS.traceChars);
  });

  it('GitLab: a huge project path and build name', async () => {
    const { deliver } = await pipeline(SQS_LEGACY_MAX_MESSAGE_BYTES);
    const payload = gitlabJob({
      build_name: huge(300_000),
      project: { path_with_namespace: huge(300_000) },
      build_created_at: providerTime(-60),
    });
    const { res, outcomes } = await deliver(gitlabRequest(payload));
    expect(res.statusCode).toBe(202);
    expect(outcomes.map((o) => o.result)).toEqual(['applied']);
  });

  it('an absurd job id is refused with 400 naming it, and nothing is recorded', async () => {
    const { deliver } = await pipeline();
    const payload = buildkitePayload('job.scheduled', buildkiteJob({ id: huge(300_000, 'a') }));
    const { res, received } = await deliver(buildkiteRequest(payload));
    expect(res.statusCode).toBe(400);
    expect(JSON.parse(res.body).message).toMatch(/job\.id/);
    expect(received).toHaveLength(0);
  });
});
