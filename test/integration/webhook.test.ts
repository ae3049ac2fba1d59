/**
 * The webhook handler against a real SQS emulator (fauxqs): the message that arrives, what each
 * rejected request leaves behind (nothing), duplicates, SQS outages and the Lambda entry point.
 */
import type { Context } from 'aws-lambda';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { SecretStore } from '../../functions/adapters/secrets/secret-store.js';
import { createEventsQueue } from '../../functions/adapters/sqs/events-queue.js';
import { eventId, JobEventSchema } from '../../functions/core/job-event.js';
import { loadWebhookConfig } from '../../functions/shared/config.js';
import { createWebhookHandler, type WebhookDeps, type WebhookEvent } from '../../functions/webhook/app.js';
import { type SqsHarness, startSqs, type TestQueue } from '../support/sqs.js';
import {
  BUILDKITE_SECRET,
  buildkiteJob,
  buildkitePayload,
  buildkiteRequest,
  buildkiteSignatureHeader,
  GITHUB_SECRET,
  GITLAB_TOKEN,
  githubRequest,
  githubSignature,
  gitlabJob,
  gitlabRequest,
  httpEvent,
  workflowJobExamples,
} from '../support/webhook-fixtures.js';

let sqs: SqsHarness;
let events: TestQueue;
let fifo: TestQueue;
const logs: unknown[] = [];
const logger = {
  info: (...a: unknown[]) => void logs.push(a),
  warn: (...a: unknown[]) => void logs.push(a),
  error: (...a: unknown[]) => void logs.push(a),
  debug: (...a: unknown[]) => void logs.push(a),
} as unknown as NonNullable<WebhookDeps['logger']>;

function env(queueUrl: string, extra: Record<string, string> = {}) {
  return {
    EVENTS_QUEUE_URL: queueUrl,
    QUEUES: 'default,k8s,ubuntu-latest,gitlab',
    // What each queue's agents are: Buildkite (the default template), GitHub runners, GitLab runners.
    QUEUE_OVERRIDES: JSON.stringify({
      k8s: { provider: 'github' },
      'ubuntu-latest': { provider: 'github' },
      gitlab: { provider: 'gitlab' },
    }),
    BUILDKITE_WEBHOOK_SECRET: BUILDKITE_SECRET,
    GITHUB_WEBHOOK_SECRET: `old-secret,${GITHUB_SECRET}`,
    GITLAB_WEBHOOK_TOKEN: GITLAB_TOKEN,
    WEBHOOK_MAX_BODY_BYTES: '16384',
    ...extra,
  };
}

function webhook(queueUrl = events.url, extra: Record<string, string> = {}, deps: Partial<WebhookDeps> = {}) {
  const config = loadWebhookConfig(env(queueUrl, extra));
  return createWebhookHandler({
    config,
    queue: createEventsQueue(config.eventsQueueUrl),
    secrets: new SecretStore(config.secrets),
    logger,
    ...deps,
  });
}

const queuedExample = workflowJobExamples().find((e) => e.action === 'queued' && e.workflow_job.status === 'queued')!;

beforeAll(async () => {
  sqs = await startSqs();
  sqs.useEnv();
  events = await sqs.createQueue('events');
  fifo = await sqs.createQueue('events.fifo');
});

afterEach(async () => {
  await sqs.purge(events.url);
  await sqs.purge(fifo.url);
  logs.length = 0;
});

afterAll(async () => {
  await sqs?.stop();
});

describe('accepted events: exactly one message, the normalised event', () => {
  it('GitHub workflow_job queued', async () => {
    const res = await webhook()(githubRequest(queuedExample, { delivery: 'delivery-1' }));
    expect(res.statusCode).toBe(202);
    const id = eventId('github', String(queuedExample.workflow_job.id), 'scheduled');
    expect(JSON.parse(res.body)).toEqual({
      status: 'accepted',
      eventId: id,
      kind: 'scheduled',
      queue: 'ubuntu-latest',
    });
    const messages = await sqs.receiveAll(events.url);
    expect(messages).toHaveLength(1);
    const body = JSON.parse(messages[0]!.Body!);
    expect(JobEventSchema.parse(body)).toEqual(body);
    expect(body).toEqual({
      id,
      provider: 'github',
      jobId: '289782451',
      queue: 'ubuntu-latest',
      kind: 'scheduled',
      occurredAt: '2021-09-13T02:21:13.000Z',
      receivedAt: expect.any(String),
      deliveryId: 'delivery-1',
      trace: {
        repository: 'Codertocat/Hello-World',
        pipeline: 'CodeQL',
        run: '2202229078/1',
        url: 'https://github.com/octo-org/octo-repo/runs/1291536064',
      },
    });
    expect(messages[0]!.MessageAttributes?.eventId?.StringValue).toBe(id);
  });

  it('Buildkite job.scheduled (signature) and job.started (token)', async () => {
    const handler = webhook();
    const scheduled = await handler(buildkiteRequest(buildkitePayload('job.scheduled')));
    const started = await handler(
      buildkiteRequest(buildkitePayload('job.started', buildkiteJob({ started_at: '2026-11-23 10:00:09 UTC' })), {
        token: true,
      }),
    );
    expect([scheduled.statusCode, started.statusCode]).toEqual([202, 202]);
    const bodies = (await sqs.receiveAll(events.url)).map((m) => JSON.parse(m.Body!));
    expect(bodies.map((b) => [b.provider, b.kind, b.queue]).sort()).toEqual([
      ['buildkite', 'scheduled', 'default'],
      ['buildkite', 'started', 'default'],
    ]);
  });

  it('GitLab Job Hook pending, with a stage prefix, mixed-case headers and a base64 body', async () => {
    const body = JSON.stringify(gitlabJob());
    const req = httpEvent({
      path: '/prod/webhooks/gitlab',
      body,
      base64: true,
      headers: { 'X-GITLAB-EVENT': 'Job Hook', 'x-gitlab-TOKEN': GITLAB_TOKEN, 'X-Gitlab-Event-UUID': 'uuid-9' },
    });
    const res = await webhook()(req);
    expect(res.statusCode).toBe(202);
    const [message] = await sqs.receiveAll(events.url);
    expect(JSON.parse(message!.Body!)).toMatchObject({
      provider: 'gitlab',
      jobId: '1977',
      kind: 'scheduled',
      deliveryId: 'uuid-9',
    });
  });

  it('a base64 body is verified on its raw bytes (GitHub form-encoded delivery)', async () => {
    const raw = new URLSearchParams({ payload: JSON.stringify(queuedExample) }).toString();
    const req = httpEvent({
      path: '/webhooks/github',
      body: raw,
      base64: true,
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'x-github-event': 'workflow_job',
        'x-hub-signature-256': githubSignature(GITHUB_SECRET, raw),
      },
    });
    expect((await webhook()(req)).statusCode).toBe(202);
    expect(await sqs.depth(events.url)).toBe(1);
  });

  it('FIFO queue: deduplication and group ids are set', async () => {
    await webhook(fifo.url)(gitlabRequest(gitlabJob()));
    const [message] = await sqs.receiveAll(fifo.url);
    expect(message!.Attributes).toMatchObject({
      MessageGroupId: 'gitlab:1977',
      MessageDeduplicationId: eventId('gitlab', '1977', 'scheduled'),
    });
  });
});

describe('duplicates', () => {
  it('a redelivered event carries the same event id, so downstream it is a no-op', async () => {
    const handler = webhook();
    const first = await handler(githubRequest(queuedExample, { delivery: 'a' }));
    const again = await handler(githubRequest(queuedExample, { delivery: 'b' }));
    expect(JSON.parse(again.body).eventId).toBe(JSON.parse(first.body).eventId);
    const ids = (await sqs.receiveAll(events.url)).map((m) => JSON.parse(m.Body!).id);
    expect(ids).toHaveLength(2);
    expect(new Set(ids).size).toBe(1);
  });

  it('on a FIFO queue the redelivery is not even recorded twice', async () => {
    const handler = webhook(fifo.url);
    for (const delivery of ['a', 'b', 'c']) {
      expect((await handler(githubRequest(queuedExample, { delivery }))).statusCode).toBe(202);
    }
    expect(await sqs.depth(fifo.url)).toBe(1);
  });
});

describe('rejected or ignored requests leave the queue empty', () => {
  const now = Math.floor(Date.now() / 1000);
  const gh = () => githubRequest(queuedExample);
  const signedGithub = (body: string, headers: Record<string, string> = {}) =>
    httpEvent({
      path: '/webhooks/github',
      body,
      headers: {
        'x-github-event': 'workflow_job',
        'x-hub-signature-256': githubSignature(GITHUB_SECRET, body),
        ...headers,
      },
    });
  const cases: [string, () => WebhookEvent, number, Record<string, unknown> | RegExp][] = [
    ['GitHub wrong secret', () => githubRequest(queuedExample, { secret: 'nope' }), 401, { message: 'Unauthorized' }],
    [
      'GitHub no signature',
      () => ({ ...gh(), headers: { 'x-github-event': 'workflow_job' } }),
      401,
      { message: 'Unauthorized' },
    ],
    [
      'GitHub tampered body',
      () => ({ ...gh(), body: gh().body!.replace('queued', 'completed') }),
      401,
      { message: 'Unauthorized' },
    ],
    [
      'Buildkite stale timestamp',
      () => buildkiteRequest(buildkitePayload('job.scheduled'), { nowSeconds: now - 301 }),
      401,
      { message: 'Unauthorized' },
    ],
    [
      'Buildkite wrong token',
      () => buildkiteRequest(buildkitePayload('job.scheduled'), { token: true, secret: 'x' }),
      401,
      { message: 'Unauthorized' },
    ],
    ['GitLab wrong token', () => gitlabRequest(gitlabJob(), { token: 'guess' }), 401, { message: 'Unauthorized' }],
    ['malformed JSON', () => signedGithub('{"action":'), 400, /not valid JSON/],
    ['missing field', () => signedGithub(JSON.stringify({ action: 'queued' })), 400, /workflow_job/],
    ['GitLab missing build_id', () => gitlabRequest({ ...gitlabJob(), build_id: undefined }), 400, /build_id/],
    ['body over the limit', () => signedGithub(JSON.stringify({ pad: 'x'.repeat(17000) })), 413, /16384/],
    [
      'base64 body over the limit',
      () => ({
        ...signedGithub('x'.repeat(16385)),
        body: Buffer.from('x'.repeat(16385)).toString('base64'),
        isBase64Encoded: true,
      }),
      413,
      /16384/,
    ],
    ['unknown provider', () => httpEvent({ path: '/webhooks/jenkins', body: '{}' }), 404, { message: 'Not found' }],
    ['unknown path', () => httpEvent({ path: '/', body: '{}' }), 404, { message: 'Not found' }],
    [
      'wrong method',
      () => ({ ...gh(), requestContext: { http: { method: 'GET' } } }),
      405,
      { message: 'Method not allowed' },
    ],
    [
      'GitHub waiting',
      () => githubRequest(workflowJobExamples().find((e) => e.action === 'waiting')),
      202,
      { status: 'ignored', reason: expect.any(String) },
    ],
    [
      'GitHub label not served',
      () => githubRequest({ ...queuedExample, workflow_job: { ...queuedExample.workflow_job, labels: ['macos'] } }),
      202,
      { status: 'ignored', reason: expect.stringMatching(/macos/) },
    ],
    [
      'GitHub other event',
      () => githubRequest({ zen: 'Keep it simple' }, { event: 'ping' }),
      202,
      { status: 'ignored', reason: expect.any(String) },
    ],
    [
      'Buildkite non-script job',
      () => buildkiteRequest(buildkitePayload('job.scheduled', buildkiteJob({ type: 'waiter' }))),
      202,
      { status: 'ignored', reason: expect.any(String) },
    ],
    [
      'Buildkite build event',
      () => buildkiteRequest(buildkitePayload('build.running')),
      202,
      { status: 'ignored', reason: expect.any(String) },
    ],
    ['Buildkite ping', () => buildkiteRequest({ event: 'ping' }), 200, { status: 'pong' }],
    [
      'GitLab created',
      () => gitlabRequest(gitlabJob({ build_status: 'created' })),
      202,
      { status: 'ignored', reason: expect.any(String) },
    ],
  ];

  for (const [name, make, status, body] of cases) {
    it(`${name} -> ${status}`, async () => {
      const res = await webhook()(make());
      expect(res.statusCode).toBe(status);
      if (body instanceof RegExp) expect(JSON.parse(res.body).message).toMatch(body);
      else expect(JSON.parse(res.body)).toEqual(body);
      if (status === 405) expect(res.headers?.allow).toBe('POST');
      expect(await sqs.depth(events.url)).toBe(0);
    });
  }

  it('a provider with no secret configured is disabled (404), never open', async () => {
    const config = loadWebhookConfig({ EVENTS_QUEUE_URL: events.url, GITHUB_WEBHOOK_SECRET: GITHUB_SECRET });
    const handler = createWebhookHandler({
      config,
      queue: createEventsQueue(events.url),
      secrets: new SecretStore(config.secrets),
    });
    expect((await handler(gitlabRequest(gitlabJob(), { token: '' }))).statusCode).toBe(404);
    expect((await handler(buildkiteRequest(buildkitePayload('job.scheduled'), { secret: '' }))).statusCode).toBe(404);
    expect(await sqs.depth(events.url)).toBe(0);
  });

  it('logs never contain a secret, token or signature', async () => {
    const handler = webhook();
    const body = JSON.stringify(buildkitePayload('job.scheduled'));
    const signature = buildkiteSignatureHeader(BUILDKITE_SECRET, body, now);
    await handler(
      httpEvent({
        path: '/webhooks/buildkite',
        body,
        headers: { 'x-buildkite-event': 'job.scheduled', 'x-buildkite-signature': signature },
      }),
    );
    await handler(buildkiteRequest(buildkitePayload('job.scheduled'), { token: true, secret: 'attacker-guess-123' }));
    await handler(githubRequest(queuedExample));
    await handler(githubRequest(queuedExample, { secret: 'wrong' }));
    await handler(gitlabRequest(gitlabJob()));
    const text = JSON.stringify(logs);
    expect(logs.length).toBeGreaterThanOrEqual(5);
    for (const secret of [
      BUILDKITE_SECRET,
      GITHUB_SECRET,
      GITLAB_TOKEN,
      'attacker-guess-123',
      signature.split('signature=')[1]!,
      'sha256=',
    ]) {
      expect(text).not.toContain(secret);
    }
  });
});

describe('prototype keys (Object.prototype member names) are ignored, never enqueued', () => {
  const keys = ['constructor', 'toString', 'valueOf', '__proto__', 'isPrototypeOf', 'hasOwnProperty'];
  const requests: [string, (key: string) => WebhookEvent][] = [
    ['Buildkite event (header and body)', (key) => buildkiteRequest(buildkitePayload(key))],
    [
      'Buildkite X-Buildkite-Event header over a job.scheduled body',
      (key) => {
        const body = JSON.stringify(buildkitePayload('job.scheduled'));
        const signature = buildkiteSignatureHeader(BUILDKITE_SECRET, body, Math.floor(Date.now() / 1000));
        return httpEvent({
          path: '/webhooks/buildkite',
          body,
          headers: { 'X-Buildkite-Event': key, 'X-Buildkite-Signature': signature },
        });
      },
    ],
    ['GitHub action', (key) => githubRequest({ ...queuedExample, action: key })],
    ['GitLab build_status', (key) => gitlabRequest(gitlabJob({ build_status: key }))],
  ];
  for (const [name, make] of requests) {
    it(name, async () => {
      const handler = webhook();
      for (const key of keys) {
        const res = await handler(make(key));
        expect([key, res.statusCode, JSON.parse(res.body).status]).toEqual([key, 202, 'ignored']);
      }
      expect(await sqs.depth(events.url)).toBe(0);
    });
  }
});

describe('outages', () => {
  it('SQS unavailable -> 503 so the provider retries, and nothing is recorded', async () => {
    const down = await startSqs();
    const queue = await down.createQueue('gone', { dlq: false });
    await down.stop();
    const previous = process.env.AWS_ENDPOINT_URL_SQS;
    down.useEnv(); // the SDK now points at the stopped emulator
    try {
      const res = await webhook(queue.url)(githubRequest(queuedExample));
      expect(res.statusCode).toBe(503);
      expect(res.headers?.['retry-after']).toBeDefined();
    } finally {
      process.env.AWS_ENDPOINT_URL_SQS = previous;
      sqs.useEnv();
    }
    expect(await sqs.depth(events.url)).toBe(0);
  });

  it('SSM unavailable -> 503; a rotated SSM secret is picked up without a redeploy', async () => {
    let value: string | Error = new Error('SSM throttled');
    const fetchParameter = async () => {
      if (value instanceof Error) throw value;
      return value;
    };
    const config = loadWebhookConfig({
      EVENTS_QUEUE_URL: events.url,
      QUEUES: 'ubuntu-latest',
      JOB_TEMPLATE: 'github',
      GITHUB_WEBHOOK_SECRET_PARAMETER: '/ci/github',
    });
    const handler = createWebhookHandler({
      config,
      queue: createEventsQueue(events.url),
      secrets: new SecretStore(config.secrets, { fetchParameter, minRefreshIntervalMs: 0 }),
    });
    expect((await handler(githubRequest(queuedExample))).statusCode).toBe(503);
    value = 'before-rotation';
    await new Promise((r) => setTimeout(r, 1_100)); // failed fetches are retried at most once a second
    expect((await handler(githubRequest(queuedExample, { secret: 'before-rotation' }))).statusCode).toBe(202);
    value = 'after-rotation';
    expect((await handler(githubRequest(queuedExample, { secret: 'after-rotation' }))).statusCode).toBe(202);
    expect((await handler(githubRequest(queuedExample, { secret: 'before-rotation' }))).statusCode).toBe(401);
    expect(await sqs.depth(events.url)).toBe(2);
  });
});

describe('Lambda entry point (functions/webhook/handler.ts)', () => {
  const context = {
    functionName: 'webhook',
    awsRequestId: 'req-1',
    invokedFunctionArn: 'arn',
    memoryLimitInMB: '256',
  } as unknown as Context;

  afterEach(() => {
    vi.unstubAllEnvs();
    vi.resetModules();
  });

  it('reads its configuration at cold start and records events', async () => {
    for (const [k, v] of Object.entries(env(events.url))) vi.stubEnv(k, v);
    vi.stubEnv('LOG_LEVEL', 'ERROR');
    const { handler } = await import('../../functions/webhook/handler.js');
    const res = await handler(gitlabRequest(gitlabJob()) as never, context);
    expect(res.statusCode).toBe(202);
    expect(await sqs.depth(events.url)).toBe(1);
  });

  it('a bad environment variable fails the cold start with a message naming it', async () => {
    for (const [k, v] of Object.entries(env(events.url, { WEBHOOK_MAX_BODY_BYTES: 'lots' }))) vi.stubEnv(k, v);
    await expect(import('../../functions/webhook/handler.js')).rejects.toThrow(
      'WEBHOOK_MAX_BODY_BYTES must be an integer from 1024 to 10485760, got "lots"',
    );
  });
});
