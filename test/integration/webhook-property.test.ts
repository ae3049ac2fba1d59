/**
 * Property: whatever arrives — arbitrary bodies, headers, paths, methods, base64 flags — the
 * handler answers with one of its documented statuses, never throws, and records nothing in SQS
 * unless the request carries a valid signature or token.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SecretStore } from '../../functions/adapters/secrets/secret-store.js';
import { createEventsQueue } from '../../functions/adapters/sqs/events-queue.js';
import { loadWebhookConfig } from '../../functions/shared/config.js';
import { createWebhookHandler, type WebhookEvent } from '../../functions/webhook/app.js';
import { type SqsHarness, startSqs, type TestQueue } from '../support/sqs.js';
import {
  BUILDKITE_SECRET,
  buildkiteJob,
  buildkitePayload,
  buildkiteSignatureHeader,
  GITHUB_SECRET,
  GITLAB_TOKEN,
  githubSignature,
  gitlabJob,
  workflowJobExamples,
} from '../support/webhook-fixtures.js';

let sqs: SqsHarness;
let queue: TestQueue;
let sent = 0;
let handler: (event: WebhookEvent) => Promise<{ statusCode: number; body: string }>;

beforeAll(async () => {
  sqs = await startSqs();
  sqs.useEnv();
  queue = await sqs.createQueue('events-prop', { dlq: false });
  const config = loadWebhookConfig({
    EVENTS_QUEUE_URL: queue.url,
    QUEUES: 'default,ubuntu-latest,k8s,gitlab',
    // What each queue's agents are: Buildkite (the default template), GitHub runners, GitLab runners.
    QUEUE_OVERRIDES: JSON.stringify({
      k8s: { provider: 'github' },
      'ubuntu-latest': { provider: 'github' },
      gitlab: { provider: 'gitlab' },
    }),
    BUILDKITE_WEBHOOK_SECRET: BUILDKITE_SECRET,
    GITHUB_WEBHOOK_SECRET: GITHUB_SECRET,
    GITLAB_WEBHOOK_TOKEN: GITLAB_TOKEN,
  });
  const real = createEventsQueue(queue.url);
  handler = createWebhookHandler({
    config,
    secrets: new SecretStore(config.secrets),
    queue: {
      sendEvent: async (event) => {
        sent += 1;
        return real.sendEvent(event);
      },
    },
  });
});

afterAll(async () => {
  await sqs?.stop();
});

const STATUSES = new Set([200, 202, 400, 401, 404, 405, 413]);

const headerName = fc.constantFrom(
  'x-buildkite-event',
  'x-buildkite-signature',
  'X-Buildkite-Token',
  'x-github-event',
  'X-Hub-Signature-256',
  'x-github-delivery',
  'x-gitlab-event',
  'X-Gitlab-Token',
  'x-gitlab-event-uuid',
  'content-type',
  'x-random',
);
const hex64 = fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 64, maxLength: 64 });
const plausibleValue = fc.oneof(
  fc.string(),
  fc.constantFrom(
    'job.scheduled',
    'workflow_job',
    'Job Hook',
    'ping',
    'application/x-www-form-urlencoded',
    'application/json',
  ),
  fc.constantFrom('sha256=', 'timestamp=1,signature=00').chain((p) => fc.string().map((s) => p + s)),
  hex64.map((h) => `sha256=${h}`),
  hex64.map((h) => `timestamp=${Math.floor(Date.now() / 1000)},signature=${h}`),
);
const validBodies = [
  JSON.stringify(buildkitePayload('job.scheduled')),
  JSON.stringify(buildkitePayload('job.finished', buildkiteJob({ started_at: null }))),
  JSON.stringify(workflowJobExamples().find((e) => e.action === 'queued' && e.workflow_job.status === 'queued')),
  JSON.stringify(gitlabJob()),
];
const body = fc.oneof(
  fc.string({ maxLength: 300 }),
  fc.string({ unit: 'binary', maxLength: 100 }),
  fc.json(),
  fc.constantFrom(...validBodies),
  fc.constantFrom(...validBodies).chain((b) => fc.nat(b.length).map((n) => b.slice(0, n))),
  fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a).toString('latin1')),
);
const request = fc.record({
  path: fc.oneof(
    fc.constantFrom(
      '/webhooks/buildkite',
      '/webhooks/github',
      '/webhooks/gitlab',
      '/prod/webhooks/github/',
      '/webhooks/',
    ),
    fc.string().map((s) => `/${s}`),
  ),
  method: fc.constantFrom('POST', 'POST', 'POST', 'GET', 'PUT', 'post', ''),
  headers: fc.dictionary(headerName, plausibleValue, { maxKeys: 6 }),
  body,
  base64: fc.boolean(),
});

function toEvent(r: {
  path: string;
  method: string;
  headers: Record<string, string>;
  body: string;
  base64: boolean;
}): WebhookEvent {
  return {
    rawPath: r.path,
    headers: r.headers,
    body: r.base64 ? Buffer.from(r.body, 'utf8').toString('base64') : r.body,
    isBase64Encoded: r.base64,
    requestContext: { http: { method: r.method } },
  };
}

describe('webhook under arbitrary input', () => {
  it('never crashes and never records an unauthenticated request', async () => {
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const res = await handler(toEvent(r));
        expect(STATUSES.has(res.statusCode)).toBe(true);
        expect(() => JSON.parse(res.body)).not.toThrow();
        expect(sent).toBe(0);
      }),
      { numRuns: 500 },
    );
    expect(await sqs.depth(queue.url)).toBe(0);
  });

  it('validly signed arbitrary bodies are answered 2xx or 400, never 5xx, and only events are recorded', async () => {
    const provider = fc.constantFrom('buildkite', 'github', 'gitlab');
    let acceptedRuns = 0;
    await fc.assert(
      fc.asyncProperty(
        provider,
        body,
        fc.dictionary(headerName, plausibleValue, { maxKeys: 3 }),
        async (p, text, extra) => {
          const auth: Record<string, string> =
            p === 'buildkite'
              ? {
                  'x-buildkite-event': 'job.scheduled',
                  'x-buildkite-signature': buildkiteSignatureHeader(
                    BUILDKITE_SECRET,
                    text,
                    Math.floor(Date.now() / 1000),
                  ),
                }
              : p === 'github'
                ? { 'x-github-event': 'workflow_job', 'x-hub-signature-256': githubSignature(GITHUB_SECRET, text) }
                : { 'x-gitlab-event': 'Job Hook', 'x-gitlab-token': GITLAB_TOKEN };
          const headers = {
            ...Object.fromEntries(Object.entries(extra).filter(([k]) => !/signature|token|event$/i.test(k))),
            ...auth,
          };
          const before = sent;
          const res = await handler(
            toEvent({ path: `/webhooks/${p}`, method: 'POST', headers, body: text, base64: false }),
          );
          const empty = text === '';
          expect(empty ? [202, 400, 401] : [200, 202, 400]).toContain(res.statusCode);
          const accepted = res.statusCode === 202 && JSON.parse(res.body).status === 'accepted';
          expect(sent - before).toBe(accepted ? 1 : 0);
          if (accepted) acceptedRuns += 1;
        },
      ),
      { numRuns: 300 },
    );
    expect(acceptedRuns).toBeGreaterThan(0); // the property did exercise the accepting path
    expect(await sqs.depth(queue.url)).toBe(sent);
  });
});
