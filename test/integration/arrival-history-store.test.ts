/**
 * The learned warm pool's history in the ledger table (WARM_POOL=learned): the store against
 * DynamoDB Local (table from infra/aws/ledger-table.yml), two scaler invocations learning at once,
 * the item size of a week learned, and the DynamoDB requests a tick costs.
 */

import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  arrivalsData,
  DynamoArrivalHistoryStore,
  WARM_PK,
} from '../../functions/adapters/dynamodb/arrival-history-store.js';
import {
  ArrivalModel,
  BUCKET_MS,
  BUCKETS_PER_WEEK,
  bucketStart,
  DAY_MS,
  LEARN_GRACE_MS,
  weekBucketOf,
} from '../../functions/core/arrival-model.js';
import { WarmLearning } from '../../functions/scaler/warm-learning.js';
import { generateTrace } from '../../tools/simulate/trace.js';
import { TEST_NOW } from '../support/clock.js';
import { countingDocClient, createLedgerTable, type DynamoDbLocal, startDynamoDbLocal } from '../support/dynamodb.js';

let local: DynamoDbLocal | undefined;
let docClient: DynamoDBDocumentClient | undefined;
/** DynamoDB requests sent through docClient, by operation. */
const requests: Record<string, number> = {};
let tables = 0;

beforeAll(async () => {
  local = await startDynamoDbLocal();
  docClient = countingDocClient(local.endpoint, requests);
});

afterAll(async () => {
  docClient?.destroy();
  await local?.stop();
});

beforeEach(() => {
  for (const key of Object.keys(requests)) delete requests[key];
});

const sent = () => Object.values(requests).reduce((a, b) => a + b, 0);

async function store(): Promise<DynamoArrivalHistoryStore> {
  const tableName = `warm-${++tables}`;
  await createLedgerTable(local!.endpoint, tableName);
  return new DynamoArrivalHistoryStore({ tableName, client: docClient! });
}

/** The start of the bucket after TEST_NOW: a whole bucket of test time ahead. */
const T0 = bucketStart(TEST_NOW.getTime()) + BUCKET_MS;
const HORIZON = () => 18;

describe('learned warm pool history in DynamoDB (WARM / <queue>)', () => {
  it('writes only over the version read: a second writer of the same version is refused', async () => {
    const s = await store();
    const empty = { history: { week: new Map(), day: new Map() }, open: { start: T0, arrivals: [T0 + 1_000] } };
    expect(await s.get('default')).toBeUndefined();
    expect(await s.put('default', empty, undefined, TEST_NOW)).toBe(true);
    expect(await s.put('default', empty, undefined, TEST_NOW)).toBe(false);
    const got = await s.get('default');
    expect(got?.version).toBe(1);
    expect(got?.arrivals.open).toEqual({ start: T0, arrivals: [T0 + 1_000] });
    expect(await s.put('default', empty, 1, TEST_NOW)).toBe(true);
    expect(await s.put('default', empty, 1, TEST_NOW)).toBe(false);
    expect((await s.get('default'))?.version).toBe(2);
    expect(await s.get('other')).toBeUndefined();
  });

  it('two invocations learning the same bucket at once lose none of each other’s arrivals', async () => {
    const s = await store();
    const a = new WarmLearning(s);
    const b = new WarmLearning(s);
    // Each applied different events of the same bucket (SQS hands a message to one invocation).
    const now = T0 + 60_000;
    for (let i = 0; i < 7; i++) a.arrived('default', T0 + i * 1_000, now);
    for (let i = 0; i < 5; i++) b.arrived('default', T0 + 30_000 + i * 1_000, now);
    const [ra, rb] = await Promise.all([a.sync(['default'], now, HORIZON), b.sync(['default'], now, HORIZON)]);
    expect(ra.failures).toEqual([]);
    expect(rb.failures).toEqual([]);
    expect((await s.get('default'))?.arrivals.open?.arrivals).toHaveLength(12);
    // Once the bucket ended (and the grace for late events passed) it is learned with all 12.
    const later = T0 + BUCKET_MS + LEARN_GRACE_MS + 1_000;
    await a.sync(['default'], later, HORIZON);
    const learned = (await s.get('default'))?.arrivals.history.week.get(weekBucketOf(T0));
    expect(learned?.n).toBe(1);
    expect(learned?.arrivals).toBe(12);
    // And b, syncing after, learns it a second time? No: the item holds it once.
    await b.sync(['default'], later + 60_000, HORIZON);
    expect((await s.get('default'))?.arrivals.history.week.get(weekBucketOf(T0))?.n).toBe(1);
  });

  it('a conflicting write is re-read and re-applied (counted as a conflict), never skipped', async () => {
    const s = await store();
    const a = new WarmLearning(s);
    const now = T0 + 60_000;
    a.arrived('default', T0 + 1_000, now);
    // Another invocation writes between a's read and a's write.
    const realPut = s.put.bind(s);
    let raced = false;
    s.put = async (queue, arrivals, version, at) => {
      if (!raced) {
        raced = true;
        const other = { history: { week: new Map(), day: new Map() }, open: { start: T0, arrivals: [T0 + 2_000] } };
        await realPut(queue, other, version, at);
      }
      return realPut(queue, arrivals, version, at);
    };
    const r = await a.sync(['default'], now, HORIZON);
    expect(r.conflicts).toBe(1);
    expect((await s.get('default'))?.arrivals.open?.arrivals).toEqual([T0 + 1_000, T0 + 2_000]);
  });

  it('five weeks learned for a busy queue fit the 400 KB item limit many times over', () => {
    // Builds fanning out into 5-30 jobs all day long (the bursty generator's hour, every hour:
    // 24,000 jobs a day, long within-histograms in every bucket), 5 weeks: every bucket of the
    // week with 5 samples, and the 28 days of scores the share is chosen from.
    const model = new ArrivalModel({ learnOnline: false });
    const monday = T0 - weekBucketOf(T0) * BUCKET_MS;
    for (let d = 0; d < 35; d++) {
      const arrivals = Array.from({ length: 24 }, (_, h) =>
        generateTrace('bursty', { jobs: 1000, seed: d * 24 + h + 2 }).map(
          (j) => monday + d * DAY_MS + h * 3_600_000 + j.at * 1000,
        ),
      ).flat();
      model.learnPeriod('default', monday + d * DAY_MS, monday + (d + 1) * DAY_MS, arrivals, 18);
    }
    const history = model.history('default');
    if (!history) throw new Error('nothing learned');
    expect(history.week.size).toBe(BUCKETS_PER_WEEK);
    expect(history.days).toHaveLength(28);
    const item = { pk: WARM_PK, sk: 'default', version: 1, updatedAt: TEST_NOW.toISOString() };
    const bytes =
      arrivalsData({ history, open: { start: T0, arrivals: Array.from({ length: 2_000 }, (_, i) => T0 + i * 400) } })
        .length +
      JSON.stringify(item).length +
      'data'.length;
    console.log(
      `warm pool item, 5 weeks learned (bursty builds all day, 24,000 jobs a day, 28 days scored) + 2,000 open arrivals: ${bytes} bytes`,
    );
    expect(bytes).toBeLessThan(100_000);
  });

  it('DynamoDB requests per tick: 2 when arrivals are saved or a bucket is learned, 1 for a fresh container, else 0', async () => {
    const s = await store();
    const a = new WarmLearning(s);
    let now = T0 + 10_000;
    a.arrived('default', now - 1_000, now);
    await a.sync(['default'], now, HORIZON);
    expect(requests).toEqual({ GetItem: 1, PutItem: 1 });
    // Ticks within a minute: arrivals wait in memory, no request.
    for (let i = 1; i <= 5; i++) {
      now += 10_000;
      a.arrived('default', now - 1_000, now);
      await a.sync(['default'], now, HORIZON);
    }
    expect(sent()).toBe(2);
    now += 10_000; // 60 s after the last write
    await a.sync(['default'], now, HORIZON);
    expect(sent()).toBe(4);
    // A fresh container loads the learning with one read.
    const fresh = new WarmLearning(s);
    await fresh.sync(['default'], now, HORIZON);
    expect(sent()).toBe(5);
    // A day (and 10 minutes: the last bucket's grace) of ticks every 20 s with an arrival each.
    const before = sent();
    const ticks = DAY_MS / 20_000 + 30;
    for (let i = 0; i < ticks; i++) {
      now += 20_000;
      a.arrived('default', now - 1_000, now);
      await a.sync(['default'], now, HORIZON);
    }
    const perTick = (sent() - before) / ticks;
    console.log(
      `warm pool history: ${sent() - before} DynamoDB requests over ${ticks} ticks (${perTick.toFixed(3)} per tick)`,
    );
    expect(perTick).toBeLessThan(0.7);
    // After a whole day learned the pool is sized from it (before, the recent arrivals do).
    expect(fresh.target('default', now, 18)).toBeUndefined();
    expect(a.target('default', now, 18)).toBeTypeOf('number');
  }, 120_000);
});
