/**
 * Ledger write benchmark against DynamoDB Local: n scheduled events (n distinct CI jobs) applied
 * in one DynamoLedgerStore.apply() call, then one counts() call. Requests are counted with an SDK
 * middleware at the deserialize step, i.e. once per HTTP attempt (retries included).
 *
 *   npx tsx test/bench/dynamo.ts            # n = 1000 and 10000, one JSON line each
 */
import { pathToFileURL } from 'node:url';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DynamoLedgerStore } from '../../functions/adapters/dynamodb/ledger-store.js';
import type { JobEvent } from '../../functions/core/job-event.js';
import { createLedgerTable, startDynamoDbLocal } from '../support/dynamodb.js';
import { jobEvent } from '../support/job-events.js';

export interface LedgerBenchResult {
  readonly events: number;
  /** Wall time of apply(). */
  readonly ms: number;
  readonly eventsPerSecond: number;
  /** DynamoDB HTTP requests made by apply(). */
  readonly requests: number;
  readonly applied: number;
  /** Wall time and requests of the counts() that follows (2 Query per queue + pages). */
  readonly countsMs: number;
  readonly countsRequests: number;
  readonly pending: number;
}

export async function benchLedger(
  n: number,
  options: { endpoint?: string; concurrency?: number } = {},
): Promise<LedgerBenchResult> {
  const local = options.endpoint ? undefined : await startDynamoDbLocal();
  const endpoint = options.endpoint ?? local!.endpoint;
  const tableName = `bench-ledger-${n}-${Date.now()}`;
  let requests = 0;
  const base = new DynamoDBClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    maxAttempts: 5,
  });
  base.middlewareStack.add(
    (next) => async (args) => {
      requests++;
      return next(args);
    },
    { step: 'deserialize', name: 'countRequests' },
  );
  const client = DynamoDBDocumentClient.from(base, { marshallOptions: { removeUndefinedValues: true } });
  try {
    await createLedgerTable(endpoint, tableName);
    const store = new DynamoLedgerStore({
      tableName,
      client,
      ...(options.concurrency ? { concurrency: options.concurrency } : {}),
    });
    const now = new Date();
    const events: JobEvent[] = Array.from({ length: n }, (_, i) =>
      jobEvent(`bench-${i}`, 'scheduled', { occurredAt: now.toISOString(), trace: { pipeline: 'bench' } }),
    );

    requests = 0;
    const started = performance.now();
    const outcomes = await store.apply(events, now);
    const ms = performance.now() - started;
    const applyRequests = requests;

    requests = 0;
    const countsStarted = performance.now();
    const counts = await store.counts(['default'], now);
    const countsMs = performance.now() - countsStarted;

    return {
      events: n,
      ms: Math.round(ms),
      eventsPerSecond: Math.round((n / ms) * 1000),
      requests: applyRequests,
      applied: outcomes.filter((o) => o.result === 'applied').length,
      countsMs: Math.round(countsMs),
      countsRequests: requests,
      pending: counts.default?.pending ?? 0,
    };
  } finally {
    client.destroy();
    await local?.stop();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const local = await startDynamoDbLocal();
  try {
    for (const n of [1000, 10_000]) console.log(JSON.stringify(await benchLedger(n, { endpoint: local.endpoint })));
  } finally {
    await local.stop();
  }
}
