/**
 * Webhook fuzzing: generated requests (./webhook-inputs.ts) through the real handler, its real
 * configuration, secret store, provider modules and SQS adapter.
 *  - The bulk (WEBHOOK_FUZZ_RUNS, default 100,000) runs in process: the events-queue adapter
 *    talks to a fake SQS client that checks every SendMessage as SQS would (size, characters)
 *    and as the scaler will (a valid JobEvent, its id, its FIFO ids).
 *  - A smaller share runs against fauxqs (the SQS protocol), and every message it then holds is
 *    read back with the scaler's parser.
 * Properties: never a 5xx while SQS is healthy; an answer is JSON and short; nothing is enqueued
 * without valid credentials over the exact bytes; every enqueued message is valid; an accepted
 * answer names the message that was sent; Object.prototype is never polluted.
 *
 *   npx vitest run test/fuzz/webhook.test.ts                      # 100,000 + 2,000
 *   WEBHOOK_FUZZ_RUNS=1000000 WEBHOOK_FUZZ_SEED=42 npx vitest run test/fuzz/webhook.test.ts
 */
import { SendMessageCommand, type SendMessageCommandInput, type SQSClient } from '@aws-sdk/client-sqs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SecretStore } from '../../functions/adapters/secrets/secret-store.js';
import { createEventsQueue, parseEventBody } from '../../functions/adapters/sqs/events-queue.js';
import { invalidJobEvent, jobKey } from '../../functions/core/job-event.js';
import { loadWebhookConfig } from '../../functions/shared/config.js';
import { createWebhookHandler, type WebhookEvent, type WebhookResult } from '../../functions/webhook/app.js';
import { type SqsHarness, startSqs, type TestQueue } from '../support/sqs.js';
import { SQS_LEGACY_MAX_MESSAGE_BYTES, sqsAcceptsBody } from '../support/sqs-contract.js';
import { BUILDKITE_SECRET, GITHUB_SECRET, GITLAB_TOKEN } from '../support/webhook-fixtures.js';
import { type FuzzInput, webhookInput } from './webhook-inputs.js';

const RUNS = Number(process.env.WEBHOOK_FUZZ_RUNS ?? 100_000);
const FAUXQS_RUNS = Number(process.env.WEBHOOK_FUZZ_FAUXQS_RUNS ?? 2_000);
const SEED = process.env.WEBHOOK_FUZZ_SEED === undefined ? undefined : Number(process.env.WEBHOOK_FUZZ_SEED);
/** The answers the webhook documents; a 5xx is a failure while SQS and SSM are healthy. */
const STATUSES = new Set([200, 202, 400, 401, 404, 405, 413]);

function env(queueUrl: string): Record<string, string> {
  return {
    EVENTS_QUEUE_URL: queueUrl,
    QUEUES: 'default,k8s,ubuntu-latest',
    BUILDKITE_WEBHOOK_SECRET: BUILDKITE_SECRET,
    GITHUB_WEBHOOK_SECRET: `old-secret,${GITHUB_SECRET}`,
    GITLAB_WEBHOOK_TOKEN: GITLAB_TOKEN,
    WEBHOOK_MAX_BODY_BYTES: String(256 * 1024),
  };
}

/** Problems with a SendMessage input, as SQS and the scaler would see them. */
function messageProblems(input: SendMessageCommandInput, fifo: boolean): string[] {
  const problems: string[] = [];
  const body = input.MessageBody;
  if (typeof body !== 'string') return ['no body'];
  const attributes = Object.entries(input.MessageAttributes ?? {});
  const bytes =
    Buffer.byteLength(body) +
    attributes.reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(`${v.DataType}${v.StringValue}`), 0);
  if (bytes > SQS_LEGACY_MAX_MESSAGE_BYTES) problems.push(`message of ${bytes} bytes`);
  if (!sqsAcceptsBody(body)) problems.push('characters SQS refuses');
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return [...problems, 'body is not JSON'];
  }
  const invalid = invalidJobEvent(json);
  if (invalid !== undefined) problems.push(`not a valid JobEvent: ${invalid}`);
  const parsed = parseEventBody(body);
  if (!('event' in parsed)) return [...problems, `the scaler cannot parse it: ${parsed.error}`];
  if (JSON.stringify(parsed.event) !== JSON.stringify(json)) problems.push('the scaler reads it differently');
  if (input.MessageAttributes?.eventId?.StringValue !== parsed.event.id) problems.push('eventId attribute');
  if (fifo) {
    if (input.MessageDeduplicationId !== parsed.event.id) problems.push('deduplication id');
    if (input.MessageGroupId !== jobKey(parsed.event)) problems.push('group id');
  }
  return problems;
}

/** An in-process SQS client: checks and records every SendMessage, answers like SQS. */
function fakeSqs(fifo: boolean) {
  const sent: SendMessageCommandInput[] = [];
  const violations: string[] = [];
  const client = {
    async send(command: unknown) {
      if (!(command instanceof SendMessageCommand)) throw new Error('only SendMessage is expected');
      const problems = messageProblems(command.input, fifo);
      if (problems.length > 0) violations.push(`${problems.join('; ')}: ${command.input.MessageBody?.slice(0, 300)}`);
      sent.push(command.input);
      return { MessageId: `m-${sent.length}` };
    },
  };
  return { sent, violations, client: client as unknown as SQSClient };
}

interface Tally {
  runs: number;
  accepted: number;
  byStatus: Map<number, number>;
}

/** Fails the property with what went wrong and the answer (vitest's expect is too slow here). */
function require(condition: boolean, what: string, where: string): void {
  if (!condition) throw new Error(`${what}: ${where}`);
}

/** Runs one input and checks the handler's answer against what was sent meanwhile. */
async function check(
  handler: (event: WebhookEvent) => Promise<WebhookResult>,
  input: FuzzInput,
  sentCount: () => number,
  lastSentBody: () => string | undefined,
  tally: Tally,
  violations: readonly string[] = [],
): Promise<void> {
  const before = sentCount();
  const res = await handler(input.event);
  const sent = sentCount() - before;
  tally.runs += 1;
  tally.byStatus.set(res.statusCode, (tally.byStatus.get(res.statusCode) ?? 0) + 1);
  const where = `${input.label}: ${res.statusCode} ${res.body.slice(0, 300)}`;
  require(STATUSES.has(res.statusCode), 'not a documented answer (a 5xx while SQS is healthy?)', where);
  require(res.body.length <= 2_048, 'answer longer than 2 KB', where);
  const answer = JSON.parse(res.body) as { status?: string; eventId?: string };
  const accepted = res.statusCode === 202 && answer.status === 'accepted';
  require(sent === (accepted ? 1 : 0), `${sent} messages sent for this answer`, where);
  if (sent > 0) {
    require(input.mayEnqueue, 'enqueued without valid credentials over the exact bytes', where);
    require(JSON.parse(lastSentBody() ?? '{}').id === answer.eventId, 'the answer names another event', where);
    require(violations.length === 0, `invalid message sent (${violations[0]?.slice(0, 300)})`, where);
    tally.accepted += 1;
  }
  require(!Object.hasOwn(Object.prototype, 'polluted'), 'Object.prototype polluted', where);
}

function params(numRuns: number) {
  return { numRuns, ...(SEED === undefined ? {} : { seed: SEED }), endOnFailure: true };
}

describe('webhook fuzzing, in process (fake SQS client checking every message)', () => {
  it(`${RUNS} generated requests: no 5xx, no unauthenticated enqueue, only valid messages`, async () => {
    const started = performance.now();
    const tally: Tally = { runs: 0, accepted: 0, byStatus: new Map() };
    // Half of the runs against a standard queue, half against a FIFO queue (dedup and group ids).
    for (const fifo of [false, true]) {
      const url = `https://sqs.us-east-1.amazonaws.com/123456789012/events${fifo ? '.fifo' : ''}`;
      const sqs = fakeSqs(fifo);
      const config = loadWebhookConfig(env(url));
      const handler = createWebhookHandler({
        config,
        queue: createEventsQueue(url, () => sqs.client),
        secrets: new SecretStore(config.secrets),
      });
      await fc.assert(
        fc.asyncProperty(webhookInput, (input) =>
          check(
            handler,
            input,
            () => sqs.sent.length,
            () => sqs.sent.at(-1)?.MessageBody,
            tally,
            sqs.violations,
          ),
        ),
        params(Math.ceil(RUNS / 2)),
      );
      expect(sqs.violations).toEqual([]);
    }
    const seconds = (performance.now() - started) / 1000;
    const statuses = Object.fromEntries([...tally.byStatus].sort(([a], [b]) => a - b));
    console.info(
      `webhook fuzz (in process): ${tally.runs} inputs in ${seconds.toFixed(1)} s, ${tally.accepted} enqueued, statuses ${JSON.stringify(statuses)}`,
    );
    expect(tally.runs).toBeGreaterThanOrEqual(RUNS);
    // The generator reaches every answer, and accepts a fair share: the properties were exercised.
    for (const status of [200, 202, 400, 401, 404, 405, 413])
      expect(tally.byStatus.get(status) ?? 0).toBeGreaterThan(0);
    expect(tally.accepted).toBeGreaterThan(RUNS / 20);
  }, 600_000);
});

describe('webhook fuzzing against fauxqs', () => {
  let sqs: SqsHarness;
  let queue: TestQueue;

  beforeAll(async () => {
    sqs = await startSqs();
    sqs.useEnv();
    queue = await sqs.createQueue('events-fuzz', {
      dlq: false,
      attributes: { MaximumMessageSize: String(SQS_LEGACY_MAX_MESSAGE_BYTES) },
    });
  });

  afterAll(async () => {
    await sqs?.stop();
  });

  it(`${FAUXQS_RUNS} generated requests: every message the queue then holds is a valid event`, async () => {
    const started = performance.now();
    const tally: Tally = { runs: 0, accepted: 0, byStatus: new Map() };
    const config = loadWebhookConfig(env(queue.url));
    const real = createEventsQueue(queue.url);
    const bodies: string[] = [];
    const handler = createWebhookHandler({
      config,
      secrets: new SecretStore(config.secrets),
      queue: {
        sendEvent: async (event) => {
          const out = await real.sendEvent(event);
          bodies.push(JSON.stringify(event));
          return out;
        },
      },
    });
    await fc.assert(
      fc.asyncProperty(webhookInput, (input) =>
        check(
          handler,
          input,
          () => bodies.length,
          () => bodies.at(-1),
          tally,
        ),
      ),
      params(FAUXQS_RUNS),
    );
    const held = await sqs.receiveAll(queue.url, { max: tally.accepted + 10, visibilityTimeoutSeconds: 300 });
    expect(held).toHaveLength(tally.accepted);
    for (const message of held) {
      expect(sqsAcceptsBody(message.Body ?? '')).toBe(true);
      expect(invalidJobEvent(JSON.parse(message.Body ?? '')), message.Body).toBeUndefined();
      expect(parseEventBody(message.Body)).toHaveProperty('event');
    }
    console.info(
      `webhook fuzz (fauxqs): ${tally.runs} inputs in ${((performance.now() - started) / 1000).toFixed(1)} s, ${tally.accepted} enqueued`,
    );
    expect(tally.accepted).toBeGreaterThan(0);
  }, 600_000);
});
