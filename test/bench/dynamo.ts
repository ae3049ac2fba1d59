/**
 * Ledger write benchmark against DynamoDB Local: n scheduled events (n distinct CI jobs) applied
 * in DynamoLedgerStore.apply() calls of 10 (one SQS batch, as the scaler drains), 4 at a time,
 * then one counts() call; once with the default transactions and once with one UpdateItem per
 * job (transactionSize 1) for comparison. Requests are counted with an SDK middleware at the
 * deserialize step, i.e. once per HTTP attempt (retries included); this process's CPU time
 * (process.cpuUsage) is reported beside the wall time, as it survives a busy machine.
 *
 *   npx tsx test/bench/dynamo.ts [n ...]    # default n = 1000 and 10000, one JSON line each
 */
import { pathToFileURL } from 'node:url';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DynamoLedgerStore } from '../../functions/adapters/dynamodb/ledger-store.js';
import type { JobEvent } from '../../functions/core/job-event.js';
import { mapLimit } from '../../functions/shared/concurrency.js';
import { createLedgerTable, startDynamoDbLocal } from '../support/dynamodb.js';
import { jobEvent } from '../support/job-events.js';
import { cpuMsSince, processCpuMs, progress } from './progress.js';

export interface LedgerBenchResult {
  readonly events: number;
  readonly transactionSize: number;
  /** Wall time of apply(). */
  readonly ms: number;
  readonly eventsPerSecond: number;
  /** DynamoDB HTTP requests made by apply(). */
  readonly requests: number;
  readonly requestsPerEvent: number;
  /** CPU time of this process (SDK, our adapter) per event applied, in microseconds. */
  readonly cpuUsPerEvent: number;
  /** CPU time of DynamoDB Local's JVM per event applied, in microseconds (Linux only). */
  readonly emulatorCpuUsPerEvent: number | null;
  readonly applied: number;
  /** Wall time and requests of the counts() that follows (2 Query per queue + pages). */
  readonly countsMs: number;
  readonly countsRequests: number;
  readonly pending: number;
}

export async function benchLedger(
  n: number,
  options: { endpoint?: string; pid?: number | undefined; concurrency?: number; transactionSize?: number } = {},
): Promise<LedgerBenchResult> {
  const local = options.endpoint ? undefined : await startDynamoDbLocal();
  const endpoint = options.endpoint ?? local?.endpoint ?? '';
  const pid = options.endpoint ? options.pid : local?.pid;
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
      ...(options.transactionSize ? { transactionSize: options.transactionSize } : {}),
    });
    const now = new Date();
    const events: JobEvent[] = Array.from({ length: n }, (_, i) =>
      jobEvent(`bench-${i}`, 'scheduled', { occurredAt: now.toISOString(), trace: { pipeline: 'bench' } }),
    );

    requests = 0;
    const started = performance.now();
    const cpu = process.cpuUsage();
    const jvm = processCpuMs(pid);
    // As the scaler applies them: batches of 10 (one SQS receive), 4 drainers at a time.
    const batches: JobEvent[][] = [];
    for (let i = 0; i < events.length; i += 10) batches.push(events.slice(i, i + 10));
    const outcomes = (await mapLimit(batches, 4, (batch) => store.apply(batch, now))).flat();
    const cpuMs = cpuMsSince(cpu);
    const jvmAfter = processCpuMs(pid);
    const jvmMs = jvm === undefined || jvmAfter === undefined ? undefined : jvmAfter - jvm;
    const ms = performance.now() - started;
    const applyRequests = requests;

    requests = 0;
    const countsStarted = performance.now();
    const counts = await store.counts(['default'], now);
    const countsMs = performance.now() - countsStarted;

    return {
      events: n,
      transactionSize: options.transactionSize ?? 25,
      ms: Math.round(ms),
      eventsPerSecond: Math.round((n / ms) * 1000),
      requests: applyRequests,
      requestsPerEvent: +(applyRequests / n).toFixed(3),
      cpuUsPerEvent: Math.round((cpuMs * 1000) / n),
      emulatorCpuUsPerEvent: jvmMs === undefined ? null : Math.round((jvmMs * 1000) / n),
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

/** `npm run bench -- --only dynamo`: each n with transactions (default) and without. */
export async function benchLedgerParts(sizes: readonly number[]) {
  const local = await startDynamoDbLocal();
  const results: LedgerBenchResult[] = [];
  try {
    for (const n of sizes) {
      for (const transactionSize of [25, 1]) {
        progress('dynamo', `${n} events, transactionSize ${transactionSize}`);
        results.push(await benchLedger(n, { endpoint: local.endpoint, pid: local.pid, transactionSize }));
      }
    }
  } finally {
    await local.stop();
  }
  return { command: 'npx tsx test/bench/dynamo.ts', results };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const sizes = process.argv
    .slice(2)
    .map(Number)
    .filter((n) => n > 0);
  const { results } = await benchLedgerParts(sizes.length > 0 ? sizes : [1000, 10_000]);
  for (const r of results) console.log(JSON.stringify(r));
}
