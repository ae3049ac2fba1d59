/**
 * The scaler's Lambda entry point as deployed: configuration from the environment at cold start,
 * real adapters, four invocations at once against the same state.
 */

import type { Context } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createEventsQueue } from '../../functions/adapters/sqs/events-queue.js';
import { resetAwsClients } from '../../functions/shared/aws.js';
import { type FakeKube, startFakeKube } from '../../tools/fakes/kube/index.js';
import { createLedgerTable, type DynamoDbLocal, startDynamoDbLocal, useDynamoDbLocal } from '../support/dynamodb.js';
import { jobEvent } from '../support/job-events.js';
import { type SqsHarness, startSqs } from '../support/sqs.js';

let dynamo: DynamoDbLocal;
let sqs: SqsHarness;
let kube: FakeKube;
const saved = { ...process.env };
/** The environment with the emulators' endpoints, set in beforeAll. */
let base: NodeJS.ProcessEnv;

beforeAll(async () => {
  [dynamo, sqs, kube] = await Promise.all([startDynamoDbLocal(), startSqs(), startFakeKube()]);
  useDynamoDbLocal(dynamo.endpoint);
  sqs.useEnv();
  resetAwsClients();
  base = { ...process.env };
});

afterAll(async () => {
  process.env = saved;
  resetAwsClients();
  await Promise.all([dynamo?.stop(), sqs?.stop(), kube?.stop()]);
});

/** A Lambda context whose timeout leaves the loop `budgetMs` after the 8 s safety margin. */
const context = (budgetMs: number) => ({ getRemainingTimeInMillis: () => budgetMs + 8_000 }) as unknown as Context;

async function importHandler() {
  vi.resetModules();
  return import('../../functions/scaler/handler.js');
}

describe('scaler handler', () => {
  it('refuses to start on a bad variable, naming it', async () => {
    process.env = {
      ...base,
      EVENTS_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/1/q',
      LEDGER_TABLE: 't',
      KUBECONFIG: '/x',
      MAX_AGENTS: 'ten',
    };
    await expect(importHandler()).rejects.toThrow('MAX_AGENTS must be an integer >= MIN_AGENTS and >= 1, got "ten"');
  });

  it('four invocations at once provision every pending job exactly once, within MAX_AGENTS', async () => {
    const queue = await sqs.createQueue('handler-events');
    await createLedgerTable(dynamo.endpoint, 'handler-ledger');
    process.env = {
      ...base,
      EVENTS_QUEUE_URL: queue.url,
      LEDGER_TABLE: 'handler-ledger',
      KUBECONFIG: kube.kubeconfigPath,
      MAX_AGENTS: '6',
      SCALER_POLL_SECONDS: '1',
      LOG_LEVEL: 'ERROR',
      POWERTOOLS_METRICS_DISABLED: 'true',
    };
    const events = createEventsQueue(queue.url);
    const now = new Date().toISOString();
    await Promise.all(
      Array.from({ length: 9 }, (_, i) =>
        events.sendEvent(
          jobEvent(String(1000 + i), 'scheduled', {
            provider: 'github',
            occurredAt: now,
            trace: { repository: 'org/app' },
          }),
        ),
      ),
    );
    // Four containers: four module instances, each with its own clients and cold start.
    const handlers = [];
    for (let i = 0; i < 4; i++) handlers.push((await importHandler()).handler);
    const results = await Promise.all(handlers.map((handler) => handler({}, context(2_000))));
    const agents = kube.jobs().reduce((sum, j) => sum + (j.spec?.parallelism ?? 0), 0);
    expect(agents).toBe(6);
    expect(results.reduce((n, r) => n + r.eventsReceived, 0)).toBeGreaterThanOrEqual(9);
    expect(results.reduce((n, r) => n + r.agentsRequested, 0)).toBe(6);
    expect(await sqs.depth(queue.url)).toBe(0);
  });
});
