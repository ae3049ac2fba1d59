/**
 * Issue 21 point 2 on the DynamoDB ledger (DynamoDB Local, table from infra/aws/ledger-table.yml):
 * a job counted pending in one queue whose `started` event names another queue's agent leaves
 * the first queue's pending count and is counted running in the second, in the same store the
 * scaler reads (the `open-jobs` index); the same on the in-memory store.
 */
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoLedgerStore } from '../../functions/adapters/dynamodb/ledger-store.js';
import type { LedgerStore } from '../../functions/core/stores.js';
import { InMemoryLedgerStore } from '../../tools/fakes/memory/ledger-store.js';
import { TEST_NOW } from '../support/clock.js';
import { createLedgerTable, type DynamoDbLocal, localDynamoDbClient, startDynamoDbLocal } from '../support/dynamodb.js';
import { jobEvent } from '../support/job-events.js';

let local: DynamoDbLocal | undefined;
let doc: DynamoDBDocumentClient | undefined;

beforeAll(async () => {
  local = await startDynamoDbLocal();
  doc = DynamoDBDocumentClient.from(localDynamoDbClient(local.endpoint), {
    marshallOptions: { removeUndefinedValues: true },
  });
}, 120_000);

afterAll(async () => {
  doc?.destroy();
  await local?.stop();
});

describe.each([
  ['DynamoLedgerStore (DynamoDB Local)', 'dynamo'],
  ['InMemoryLedgerStore', 'memory'],
] as const)("%s: a job started by another queue's agent moves to that queue", (_name, kind) => {
  it('pending in default, then running in gpu only', async () => {
    let ledger: LedgerStore;
    if (kind === 'dynamo') {
      await createLedgerTable(local!.endpoint, 'ledger-runs-where');
      ledger = new DynamoLedgerStore({ tableName: 'ledger-runs-where', client: doc! });
    } else {
      ledger = new InMemoryLedgerStore();
    }
    const at = new Date(TEST_NOW.getTime());
    const iso = at.toISOString();
    await ledger.apply([jobEvent('j-1', 'scheduled', { queue: 'default', occurredAt: iso })], at);
    expect(await ledger.counts(['default', 'gpu'], at)).toMatchObject({
      default: { pending: 1, running: 0 },
      gpu: { pending: 0, running: 0 },
    });
    const later = new Date(at.getTime() + 5_000);
    await ledger.apply([jobEvent('j-1', 'started', { queue: 'gpu', occurredAt: later.toISOString() })], later);
    // The open-jobs index is eventually consistent: read until it settles (milliseconds).
    let counts = await ledger.counts(['default', 'gpu'], later);
    for (let i = 0; i < 20 && counts.gpu?.running !== 1; i++) {
      await new Promise((r) => setTimeout(r, 100));
      counts = await ledger.counts(['default', 'gpu'], later);
    }
    expect(counts).toMatchObject({ default: { pending: 0, running: 0 }, gpu: { pending: 0, running: 1 } });
  }, 60_000);
});
