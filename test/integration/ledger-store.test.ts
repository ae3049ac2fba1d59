/**
 * Contract test of the ledger: the same cases against the DynamoDB store (on DynamoDB Local,
 * table created from infra/aws/ledger-table.yml) and the in-memory store.
 */

import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DynamoLedgerStore } from '../../functions/adapters/dynamodb/ledger-store.js';
import { JOB_EVENT_KINDS, type JobEvent, type JobEventKind } from '../../functions/core/job-event.js';
import type { LedgerJobRecord, LedgerStore } from '../../functions/core/stores.js';
import { InMemoryLedgerStore } from '../../tools/fakes/memory/ledger-store.js';
import { at, TEST_NOW } from '../support/clock.js';
import { createLedgerTable, type DynamoDbLocal, startDynamoDbLocal } from '../support/dynamodb.js';
import { jobEvent } from '../support/job-events.js';

type InspectableLedger = LedgerStore & {
  get(job: { provider: JobEvent['provider']; jobId: string }): Promise<LedgerJobRecord | undefined>;
};

interface Backend {
  readonly name: string;
  /** A fresh, empty ledger. */
  create(): Promise<InspectableLedger>;
  /** A ledger whose writes fail (unreachable table / injected failure). */
  broken(): Promise<LedgerStore>;
}

let local: DynamoDbLocal | undefined;
let docClient: DynamoDBDocumentClient | undefined;
let tables = 0;

const dynamo: Backend = {
  name: 'DynamoLedgerStore (DynamoDB Local)',
  async create() {
    const tableName = `ledger-${++tables}`;
    await createLedgerTable(local!.endpoint, tableName);
    return new DynamoLedgerStore({ tableName, client: docClient!, retentionDays: 7 });
  },
  async broken() {
    return new DynamoLedgerStore({ tableName: 'no-such-table', client: docClient! });
  },
};

const memory: Backend = {
  name: 'InMemoryLedgerStore',
  async create() {
    return new InMemoryLedgerStore({ retentionDays: 7 });
  },
  async broken() {
    const store = new InMemoryLedgerStore();
    store.failWith = () => 'injected failure';
    return store;
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
    { marshallOptions: { removeUndefinedValues: true } },
  );
});

afterAll(async () => {
  docClient?.destroy();
  await local?.stop();
});

// The real clock, not a calendar day: DynamoDB Local's TTL sweeper deletes items whose TTL
// (event time + 7 days) has passed (test/support/clock.ts).
const NOW = TEST_NOW;
const DAY = 86_400;

function ev(kind: JobEventKind, jobId: string, queue = 'default'): JobEvent {
  return jobEvent(jobId, kind, {
    queue,
    occurredAt: at(-3600 + JOB_EVENT_KINDS.indexOf(kind)),
    receivedAt: at(-3590),
    trace: { pipeline: 'app', build: '42' },
  });
}

/**
 * counts() as { pending, running }, checking that every running job comes with its start time
 * (openAt), and that they are in ascending order.
 */
async function tally(ledger: LedgerStore, queues: readonly string[], now: Date) {
  const counts = await ledger.counts(queues, now);
  return Object.fromEntries(
    Object.entries(counts).map(([queue, { pending, running, runningSince }]) => {
      expect(runningSince).toHaveLength(running);
      expect(runningSince).toEqual([...(runningSince ?? [])].sort((a, b) => a - b));
      return [queue, { pending, running }];
    }),
  );
}

function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [[...items]];
  return items.flatMap((item, i) =>
    permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]),
  );
}

describe.each([dynamo, memory])('$name', (backend) => {
  let ledger: InspectableLedger;
  beforeEach(async () => {
    ledger = await backend.create();
  });

  it('counts a scheduled job as pending, then running, then neither', async () => {
    expect(await tally(ledger, ['default'], NOW)).toEqual({ default: { pending: 0, running: 0 } });
    await ledger.apply([ev('scheduled', 'j1')], NOW);
    expect(await tally(ledger, ['default'], NOW)).toEqual({ default: { pending: 1, running: 0 } });
    await ledger.apply([ev('started', 'j1')], NOW);
    expect(await tally(ledger, ['default'], NOW)).toEqual({ default: { pending: 0, running: 1 } });
    // The running job's start: no earlier than the started webhook was received, whole seconds.
    expect((await ledger.counts(['default'], NOW)).default?.runningSince).toEqual([
      Math.floor(Date.parse(ev('started', 'j1').receivedAt) / 1000),
    ]);
    await ledger.apply([ev('finished', 'j1')], NOW);
    expect(await tally(ledger, ['default'], NOW)).toEqual({ default: { pending: 0, running: 0 } });
  });

  it('duplicate, reordered and cancelled events end in the right states and counts', async () => {
    const batch1 = [
      ev('scheduled', 'dup'),
      ev('scheduled', 'dup'), // duplicate in the same batch
      ev('started', 'early'), // started before scheduled
      ev('scheduled', 'cancel-me'),
      ev('finished', 'late'), // finished before scheduled
      ev('scheduled', 'other-queue', 'gpu'),
    ];
    await ledger.apply(batch1, NOW);
    const batch2 = [
      ev('scheduled', 'dup'), // duplicate in a later batch
      ev('scheduled', 'early'), // late scheduled after started
      ev('cancelled', 'cancel-me'), // cancelled before it started
      ev('scheduled', 'late'), // late scheduled after finished
      ev('started', 'late'),
    ];
    const outcomes = await ledger.apply(batch2, NOW);
    expect(outcomes.map((o) => o.result)).toEqual(['noop', 'noop', 'applied', 'noop', 'noop']);

    expect(await tally(ledger, ['default', 'gpu', 'unknown'], NOW)).toEqual({
      default: { pending: 1, running: 1 },
      gpu: { pending: 1, running: 0 },
      unknown: { pending: 0, running: 0 },
    });
    const states = await Promise.all(
      ['dup', 'early', 'cancel-me', 'late'].map(
        async (jobId) => (await ledger.get({ provider: 'buildkite', jobId }))?.state,
      ),
    );
    expect(states).toEqual(['scheduled', 'started', 'cancelled', 'finished']);
  });

  it("reports one outcome per input event, merged events sharing their representative's", async () => {
    const batch = [ev('scheduled', 'a'), ev('started', 'a'), ev('scheduled', 'b'), ev('scheduled', 'a')];
    const first = await ledger.apply(batch, NOW);
    expect(first).toEqual(batch.map((e) => ({ eventId: e.id, result: 'applied' })));
    expect((await ledger.get({ provider: 'buildkite', jobId: 'a' }))?.state).toBe('started');

    const again = await ledger.apply(batch, NOW);
    expect(again.map((o) => o.result)).toEqual(['noop', 'noop', 'noop', 'noop']);
  });

  it('converges to the same final state whatever order the four events of a job arrive in', async () => {
    const orders = permutations(JOB_EVENT_KINDS);
    // One job per order; event i of every job goes in batch i.
    for (let i = 0; i < JOB_EVENT_KINDS.length; i++) {
      await ledger.apply(
        orders.map((order, o) => ev(order[i]!, `perm-${o}`)),
        NOW,
      );
    }
    const finals = await Promise.all(
      orders.map(async (_o, o) => (await ledger.get({ provider: 'buildkite', jobId: `perm-${o}` }))?.state),
    );
    expect(new Set(finals)).toEqual(new Set(['finished']));
    expect(await tally(ledger, ['default'], NOW)).toEqual({ default: { pending: 0, running: 0 } });
  });

  it('applies 1000 events and counts them', async () => {
    const scheduled = Array.from({ length: 1000 }, (_, i) => ev('scheduled', `bulk-${i}`));
    const outcomes = await ledger.apply(scheduled, NOW);
    expect(outcomes.filter((o) => o.result === 'applied')).toHaveLength(1000);
    expect(await tally(ledger, ['default'], NOW)).toEqual({ default: { pending: 1000, running: 0 } });

    // 400 start, 250 of those finish, 100 never-started ones are cancelled, all delivered twice.
    const later = [
      ...Array.from({ length: 400 }, (_, i) => ev('started', `bulk-${i}`)),
      ...Array.from({ length: 250 }, (_, i) => ev('finished', `bulk-${i}`)),
      ...Array.from({ length: 100 }, (_, i) => ev('cancelled', `bulk-${900 + i}`)),
    ];
    const results = await ledger.apply([...later, ...later], NOW);
    expect(results.every((o) => o.result === 'applied')).toBe(true);
    expect(await tally(ledger, ['default'], NOW)).toEqual({ default: { pending: 500, running: 150 } });
  });

  it('stops at the cap: pending counted up to it, the running jobs that started last', async () => {
    const startedAt = (i: number) => at(-3600 + i);
    const started = Array.from({ length: 30 }, (_, i) => ({
      ...ev('started', `run-${i}`),
      occurredAt: startedAt(i),
      receivedAt: startedAt(i),
    }));
    const scheduled = Array.from({ length: 40 }, (_, i) => ev('scheduled', `wait-${i}`));
    await ledger.apply([...started, ...scheduled, ev('scheduled', 'other', 'gpu')], NOW);
    const counts = await ledger.counts(['default', 'gpu'], NOW, { cap: { default: 12 } });
    const latest = Array.from({ length: 12 }, (_, i) => Math.floor(Date.parse(startedAt(18 + i)) / 1000));
    expect(counts.default).toEqual({ pending: 12, running: 12, runningSince: latest, capped: true });
    // A queue without a cap is counted in full; under its cap nothing is cut.
    expect(counts.gpu).toMatchObject({ pending: 1, running: 0 });
    expect(counts.gpu?.capped).toBeUndefined();
    const roomy = await ledger.counts(['default'], NOW, { cap: { default: 100 } });
    expect(roomy.default).toMatchObject({ pending: 40, running: 30 });
    expect(roomy.default?.capped).toBeUndefined();
  });

  it('sets the TTL attribute on finished and cancelled jobs only, and drops them from the open index', async () => {
    await ledger.apply(
      [ev('scheduled', 'open'), ev('started', 'running'), ev('finished', 'done'), ev('cancelled', 'gone')],
      NOW,
    );
    const [open, running, done, gone] = await Promise.all(
      ['open', 'running', 'done', 'gone'].map((jobId) => ledger.get({ provider: 'buildkite', jobId })),
    );
    const expiresAt = Math.floor(NOW.getTime() / 1000) + 7 * DAY;
    expect(open).toMatchObject({ state: 'scheduled', rank: 1, openKey: 'default#scheduled' });
    expect(running).toMatchObject({ state: 'started', rank: 2, openKey: 'default#started' });
    // Open jobs expire only if they never close: retention after the event that opened them.
    expect(open?.expiresAt).toBe(Date.parse(at(-3600)) / 1000 + 7 * DAY);
    // (A started job opened when its webhook was received, if that is later than the provider's time.)
    expect(running?.expiresAt).toBe(Date.parse(at(-3590)) / 1000 + 7 * DAY);
    expect(done).toMatchObject({ state: 'finished', rank: 3, expiresAt });
    expect(gone).toMatchObject({ state: 'cancelled', rank: 3, expiresAt });
    expect(done?.openKey).toBeUndefined();
    expect(gone?.openKey).toBeUndefined();
    expect(done?.openAt).toBeUndefined();

    // A job that closes later loses its openKey and gains the TTL.
    await ledger.apply([ev('finished', 'running')], new Date(NOW.getTime() + 60_000));
    const closed = await ledger.get({ provider: 'buildkite', jobId: 'running' });
    expect(closed).toMatchObject({
      state: 'finished',
      expiresAt: expiresAt + 60,
      updatedAt: at(60),
    });
    expect(closed?.openKey).toBeUndefined();
    expect(closed).toMatchObject({
      queue: 'default',
      provider: 'buildkite',
      jobId: 'running',
      eventAt: at(-3598),
      trace: { pipeline: 'app', build: '42' },
    });
  });

  it('stops counting a job whose closing event was lost, once it is older than the open-age limit', async () => {
    await ledger.apply([ev('scheduled', 'stuck'), ev('started', 'stuck-running')], NOW);
    expect(await tally(ledger, ['default'], NOW)).toEqual({ default: { pending: 1, running: 1 } });
    // A day after the started webhook was received.
    const dayLater = new Date(Date.parse(at(-3590)) + 24 * 3600_000 + 2_000);
    expect(await tally(ledger, ['default'], dayLater)).toEqual({ default: { pending: 0, running: 0 } });
    // A redriven event from long ago opens nothing that counts.
    await ledger.apply([{ ...ev('scheduled', 'ancient'), occurredAt: at(-22 * DAY) }], NOW);
    expect(await tally(ledger, ['default'], NOW)).toEqual({ default: { pending: 1, running: 1 } });
  });

  it('reports failed, never applied, when the write does not happen', async () => {
    const broken = await backend.broken();
    const batch = [ev('scheduled', 'x'), ev('started', 'x'), ev('scheduled', 'y')];
    const outcomes = await broken.apply(batch, NOW);
    expect(outcomes.map((o) => [o.eventId, o.result])).toEqual(batch.map((e) => [e.id, 'failed']));
    expect(outcomes.every((o) => typeof o.error === 'string' && o.error.length > 0)).toBe(true);
  });
});

describe('DynamoLedgerStore requests', () => {
  /** A store whose client counts requests per command and can refuse every transaction. */
  async function counted(options: { refuseTransactions?: boolean } = {}) {
    const tableName = `ledger-${++tables}`;
    await createLedgerTable(local!.endpoint, tableName);
    const sent: string[] = [];
    const client = {
      send: async (command: { constructor: { name: string } }) => {
        sent.push(command.constructor.name);
        if (options.refuseTransactions && command.constructor.name === 'TransactWriteCommand')
          throw Object.assign(new Error('Throughput exceeds the current capacity'), { name: 'ThrottlingException' });
        return docClient!.send(command as never);
      },
    } as unknown as DynamoDBDocumentClient;
    return { store: new DynamoLedgerStore({ tableName, client }), sent, tableName };
  }

  it('writes an SQS batch of ten CI jobs in one conditional transaction, duplicates staying no-ops', async () => {
    const { store, sent } = await counted();
    const batch = Array.from({ length: 10 }, (_, i) => ev('scheduled', `job-${i}`));
    expect((await store.apply(batch, NOW)).map((o) => o.result)).toEqual(batch.map(() => 'applied'));
    expect(sent).toEqual(['TransactWriteCommand']);

    // Three jobs already started: their scheduled events are no-ops, the other seven move on.
    await store.apply(
      [0, 1, 2].map((i) => ev('started', `job-${i}`)),
      NOW,
    );
    sent.length = 0;
    const mixed = batch.map((_e, i) => (i < 3 ? ev('scheduled', `job-${i}`) : ev('started', `job-${i}`)));
    const outcomes = await store.apply(mixed, NOW);
    expect(outcomes.map((o) => o.result)).toEqual(mixed.map((_, i) => (i < 3 ? 'noop' : 'applied')));
    // The cancelled transaction, then the seven again: never one request per job.
    expect(sent).toEqual(['TransactWriteCommand', 'TransactWriteCommand']);
    expect(await store.counts(['default'], NOW)).toMatchObject({ default: { pending: 0, running: 10 } });
    expect((await store.get({ provider: 'buildkite', jobId: 'job-0' }))?.state).toBe('started');
  });

  it('reads no further than the cap in the open-jobs index, however large the backlog', async () => {
    const { store, tableName } = await counted();
    const backlog = Array.from({ length: 3000 }, (_, i) => ev('scheduled', `backlog-${i}`));
    await store.apply(backlog, NOW);
    const scanned: number[] = [];
    const reading = new DynamoLedgerStore({
      tableName,
      client: {
        send: async (command: never) => {
          const out = (await docClient!.send(command)) as { ScannedCount?: number };
          scanned.push(out.ScannedCount ?? 0);
          return out;
        },
      } as unknown as DynamoDBDocumentClient,
    });
    expect((await reading.counts(['default'], NOW, { cap: { default: 101 } })).default).toMatchObject({
      pending: 101,
      capped: true,
    });
    expect(scanned.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(101);
    scanned.length = 0;
    expect((await reading.counts(['default'], NOW)).default?.pending).toBe(3000);
    expect(scanned.reduce((a, b) => a + b, 0)).toBe(3000);
  });

  it('falls back to one conditional update per job when a transaction is refused', async () => {
    const { store, sent } = await counted({ refuseTransactions: true });
    await store.apply([ev('started', 'a')], NOW);
    sent.length = 0;
    const batch = [ev('scheduled', 'a'), ev('scheduled', 'b'), ev('finished', 'c')];
    const outcomes = await store.apply(batch, NOW);
    expect(outcomes.map((o) => o.result)).toEqual(['noop', 'applied', 'applied']);
    expect(sent).toEqual(['TransactWriteCommand', 'UpdateCommand', 'UpdateCommand', 'UpdateCommand']);
    expect(await store.counts(['default'], NOW)).toMatchObject({ default: { pending: 1, running: 1 } });
  });
});
