/**
 * Contract test of the in-flight limiter: the same cases against the DynamoDB store (on
 * DynamoDB Local, table created from infra/aws/ledger-table.yml) and the in-memory store.
 */

import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DynamoLimiterStore } from '../../functions/adapters/dynamodb/limiter-store.js';
import type { DispatchRecord, LimiterStore } from '../../functions/core/stores.js';
import { InMemoryLimiterStore } from '../../tools/fakes/memory/limiter-store.js';
import { createLedgerTable, type DynamoDbLocal, startDynamoDbLocal } from '../support/dynamodb.js';

interface Backend {
  readonly name: string;
  create(): Promise<LimiterStore>;
}

let local: DynamoDbLocal | undefined;
let docClient: DynamoDBDocumentClient | undefined;
let tables = 0;

const dynamo: Backend = {
  name: 'DynamoLimiterStore (DynamoDB Local)',
  async create() {
    const tableName = `limiter-${++tables}`;
    await createLedgerTable(local!.endpoint, tableName);
    return new DynamoLimiterStore({ tableName, client: docClient! });
  },
};

const memory: Backend = {
  name: 'InMemoryLimiterStore',
  async create() {
    return new InMemoryLimiterStore();
  },
};

beforeAll(async () => {
  local = await startDynamoDbLocal();
  docClient = DynamoDBDocumentClient.from(
    new DynamoDBClient({
      endpoint: local.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
      maxAttempts: 2,
    }),
  );
});

afterAll(async () => {
  docClient?.destroy();
  await local?.stop();
});

function dispatch(queue: string, dispatchId: string, count: number): DispatchRecord {
  return {
    queue,
    dispatchId,
    jobName: `agents-${dispatchId}`,
    count,
    tokens: count,
    status: 'intent',
    createdAt: 1_795_000_000_000,
    leaseUntil: 1_795_000_120_000,
  };
}

describe.each([dynamo, memory])('$name', (backend) => {
  let store: LimiterStore;
  beforeEach(async () => {
    store = await backend.create();
  });

  it('reserve takes tokens, bumps the version and records the intent atomically', async () => {
    const d1 = dispatch('q', 'd1', 4);
    // No limiter yet: expectedVersion 0 creates it.
    expect(await store.reserve({ queue: 'q', count: 4, max: 10, expectedVersion: 0, dispatch: d1 })).toBe('reserved');
    const d2 = dispatch('q', 'd2', 6);
    expect(await store.reserve({ queue: 'q', count: 6, max: 10, expectedVersion: 1, dispatch: d2 })).toBe('reserved');
    expect(await store.snapshot()).toEqual({
      limiters: [{ queue: 'q', inFlight: 10, version: 2 }],
      dispatches: [d1, d2],
    });
  });

  it('reserve refuses, writing nothing, on a stale version, above max, or for an existing dispatch id', async () => {
    expect(
      await store.reserve({ queue: 'q', count: 2, max: 5, expectedVersion: 0, dispatch: dispatch('q', 'd1', 2) }),
    ).toBe('reserved');
    const before = await store.snapshot();
    // stale version
    expect(
      await store.reserve({ queue: 'q', count: 1, max: 5, expectedVersion: 0, dispatch: dispatch('q', 'd2', 1) }),
    ).toBe('conflict');
    // would exceed max (2 + 4 > 5)
    expect(
      await store.reserve({ queue: 'q', count: 4, max: 5, expectedVersion: 1, dispatch: dispatch('q', 'd3', 4) }),
    ).toBe('conflict');
    // count alone above max
    expect(
      await store.reserve({ queue: 'q', count: 6, max: 5, expectedVersion: 1, dispatch: dispatch('q', 'd4', 6) }),
    ).toBe('conflict');
    // the same dispatch id again (a retried tick): its tokens are not taken twice
    expect(
      await store.reserve({ queue: 'q', count: 2, max: 5, expectedVersion: 1, dispatch: dispatch('q', 'd1', 2) }),
    ).toBe('conflict');
    // a version that was never reached, on a queue that does not exist
    expect(
      await store.reserve({
        queue: 'other',
        count: 1,
        max: 5,
        expectedVersion: 3,
        dispatch: dispatch('other', 'd5', 1),
      }),
    ).toBe('conflict');
    expect(await store.snapshot()).toEqual(before);
  });

  it('8 concurrent reservers racing on one queue with max 10 never exceed 10 together', async () => {
    const max = 10;
    let reserved = 0;
    let successes = 0;
    let conflicts = 0;
    const reserver = async (worker: number): Promise<void> => {
      for (let attempt = 0; attempt < 200; attempt++) {
        const { limiters } = await store.snapshot();
        const limiter = limiters.find((l) => l.queue === 'race') ?? { inFlight: 0, version: 0 };
        const room = max - limiter.inFlight;
        if (room <= 0) return;
        const count = Math.min(room, 1 + (worker % 3));
        const outcome = await store.reserve({
          queue: 'race',
          count,
          max,
          expectedVersion: limiter.version,
          dispatch: dispatch('race', `w${worker}-a${attempt}`, count),
        });
        if (outcome === 'reserved') {
          reserved += count;
          successes++;
        } else conflicts++;
      }
      throw new Error(`worker ${worker} never finished`);
    };
    await Promise.all(Array.from({ length: 8 }, (_, w) => reserver(w)));

    const { limiters, dispatches } = await store.snapshot();
    expect(conflicts).toBeGreaterThan(0); // they did race
    expect(reserved).toBe(max);
    expect(limiters).toEqual([{ queue: 'race', inFlight: max, version: successes }]);
    expect(dispatches.reduce((sum, d) => sum + d.tokens, 0)).toBe(max);
    expect(dispatches).toHaveLength(successes);
  });

  it('markSubmitted, setTokens and release act on an existing dispatch and report a missing one', async () => {
    const d = dispatch('q', 'd1', 3);
    expect(await store.reserve({ queue: 'q', count: 3, max: 10, expectedVersion: 0, dispatch: d })).toBe('reserved');
    expect(await store.markSubmitted(d)).toBe(true);
    expect(await store.setTokens(d, 1)).toBe(true);
    expect((await store.snapshot()).dispatches).toEqual([{ ...d, status: 'submitted', tokens: 1 }]);

    expect(await store.release(d)).toBe(true);
    expect(await store.release(d)).toBe(true); // idempotent
    expect((await store.snapshot()).dispatches).toEqual([]);
    expect(await store.markSubmitted(d)).toBe(false);
    expect(await store.setTokens(d, 0)).toBe(false);
    // Neither recreated the dispatch; release left the limiter alone.
    expect(await store.snapshot()).toEqual({ limiters: [{ queue: 'q', inFlight: 3, version: 1 }], dispatches: [] });
  });

  it('fences creates: beginCreate only on an intent at the attempts read; release and setTokens refused after a fence', async () => {
    const d = { ...dispatch('q', 'd1', 3), attempts: 1, settled: 0, createsUntil: 1_795_000_065_000 };
    expect(await store.reserve({ queue: 'q', count: 3, max: 10, expectedVersion: 0, dispatch: d })).toBe('reserved');
    // Two scalers read attempts 1: only one fences its create.
    expect(await store.beginCreate(d, 1_795_000_070_000)).toBe(true);
    expect(await store.beginCreate(d, 1_795_000_071_000)).toBe(false);
    const fenced = { ...d, attempts: 2, createsUntil: 1_795_000_070_000 };
    expect((await store.snapshot()).dispatches).toEqual([fenced]);
    // Decided on the record before the fence: refused, nothing changed.
    expect(await store.release(d)).toBe(false);
    expect(await store.setTokens(d, 1)).toBe(false);
    expect((await store.snapshot()).dispatches).toEqual([fenced]);
    // One create answered without a Job, one with: submitted, and no more fences.
    expect(await store.settleCreate(fenced, false)).toBe(true);
    expect(await store.settleCreate(fenced, true)).toBe(true);
    const settled = { ...fenced, settled: 2, status: 'submitted' };
    expect((await store.snapshot()).dispatches).toEqual([settled]);
    expect(await store.beginCreate(fenced, 1_795_000_080_000)).toBe(false);
    expect(await store.setTokens(fenced, 1)).toBe(true);
    expect(await store.release(fenced)).toBe(true);
    expect(await store.release(fenced)).toBe(true); // already gone
    expect(await store.settleCreate(fenced, true)).toBe(false);
    expect(await store.beginCreate(fenced, 1_795_000_080_000)).toBe(false);
    expect((await store.snapshot()).dispatches).toEqual([]);
  });

  it('a dispatch written without attempts (before fencing) is fenced and released by the same rules', async () => {
    const legacy = dispatch('q', 'd1', 2);
    expect(await store.reserve({ queue: 'q', count: 2, max: 10, expectedVersion: 0, dispatch: legacy })).toBe(
      'reserved',
    );
    expect(await store.beginCreate(legacy, 1_795_000_070_000)).toBe(true);
    expect(await store.release(legacy)).toBe(false);
    expect((await store.snapshot()).dispatches).toEqual([{ ...legacy, attempts: 2, createsUntil: 1_795_000_070_000 }]);
  });

  it('correct sets inFlight only at the expected version, and bumps the version', async () => {
    expect(await store.correct({ queue: 'q', expectedVersion: 0, inFlight: 2 })).toBe(true); // creates it
    expect((await store.snapshot()).limiters).toEqual([{ queue: 'q', inFlight: 2, version: 1 }]);
    expect(await store.correct({ queue: 'q', expectedVersion: 0, inFlight: 0 })).toBe(false); // stale
    expect(await store.correct({ queue: 'q', expectedVersion: 1, inFlight: 0 })).toBe(true);
    expect((await store.snapshot()).limiters).toEqual([{ queue: 'q', inFlight: 0, version: 2 }]);
    // a reservation decided on the pre-correction version is refused
    expect(
      await store.reserve({ queue: 'q', count: 1, max: 10, expectedVersion: 1, dispatch: dispatch('q', 'x', 1) }),
    ).toBe('conflict');
  });

  it('keeps queues apart', async () => {
    expect(
      await store.reserve({ queue: 'a', count: 5, max: 5, expectedVersion: 0, dispatch: dispatch('a', 'd', 5) }),
    ).toBe('reserved');
    expect(
      await store.reserve({ queue: 'b', count: 5, max: 5, expectedVersion: 0, dispatch: dispatch('b', 'd', 5) }),
    ).toBe('reserved');
    const { limiters, dispatches } = await store.snapshot();
    expect(limiters).toEqual([
      { queue: 'a', inFlight: 5, version: 1 },
      { queue: 'b', inFlight: 5, version: 1 },
    ]);
    expect(dispatches.map((d) => `${d.queue}/${d.dispatchId}`)).toEqual(['a/d', 'b/d']);
  });
});
