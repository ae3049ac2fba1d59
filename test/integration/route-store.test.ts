/**
 * Routes of GitLab jobs: the RouteStore contract against the DynamoDB store (DynamoDB Local,
 * table from infra/aws/ledger-table.yml) and the in-memory one; the DynamoDB store's handling of
 * UnprocessedKeys/UnprocessedItems (aws-sdk-client-mock: DynamoDB Local never returns them); and
 * what the scaler's GitLab router costs in DynamoDB requests per CI job (DynamoDB Local, the fake
 * GitLab API over HTTP).
 */

import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchGetCommand, BatchWriteCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DynamoRouteStore, ROUTE_SK } from '../../functions/adapters/dynamodb/route-store.js';
import { createGitlabJobsApi } from '../../functions/adapters/gitlab/jobs-api.js';
import { eventId, type JobEventKind, type QueuedJobEvent } from '../../functions/core/job-event.js';
import { defaultQueueAgents } from '../../functions/core/routing.js';
import type { RouteStore } from '../../functions/core/stores.js';
import { createGitlabRouter } from '../../functions/scaler/gitlab-routes.js';
import { FakeGitlab } from '../../tools/fakes/gitlab.js';
import { InMemoryRouteStore } from '../../tools/fakes/memory/route-store.js';
import { at, TEST_NOW } from '../support/clock.js';
import { countingDocClient, createLedgerTable, type DynamoDbLocal, startDynamoDbLocal } from '../support/dynamodb.js';

let local: DynamoDbLocal | undefined;
let gitlab: FakeGitlab;
let docClient: DynamoDBDocumentClient | undefined;
/** DynamoDB requests sent through docClient, by operation (every attempt counts). */
const requests: Record<string, number> = {};
let tables = 0;

beforeAll(async () => {
  [local, gitlab] = await Promise.all([startDynamoDbLocal(), new FakeGitlab().start()]);
  docClient = countingDocClient(local.endpoint, requests);
});

afterAll(async () => {
  docClient?.destroy();
  await Promise.all([local?.stop(), gitlab?.stop()]);
});

beforeEach(() => {
  gitlab.reset();
  for (const key of Object.keys(requests)) delete requests[key];
});

async function dynamoStore(): Promise<DynamoRouteStore> {
  const tableName = `routes-${++tables}`;
  await createLedgerTable(local!.endpoint, tableName);
  return new DynamoRouteStore({ tableName, client: docClient! });
}

const job = (jobId: string) => ({ provider: 'gitlab' as const, jobId });
// The real clock: DynamoDB Local's sweeper deletes routes whose TTL has passed (test/support/clock.ts).
const NOW = TEST_NOW;

interface Backend {
  readonly name: string;
  create(): Promise<RouteStore>;
  /** A store whose every request fails (unreachable table / injected failure). */
  broken(): Promise<RouteStore>;
}

const backends: Backend[] = [
  {
    name: 'DynamoRouteStore (DynamoDB Local)',
    create: dynamoStore,
    broken: async () => new DynamoRouteStore({ tableName: 'no-such-table', client: docClient! }),
  },
  {
    name: 'InMemoryRouteStore',
    create: async () => new InMemoryRouteStore(),
    async broken() {
      const store = new InMemoryRouteStore();
      store.failWith = 'injected failure';
      return store;
    },
  },
];

describe.each(backends)('RouteStore contract: $name', (backend) => {
  it('reads back what was written, one entry per job asked, in order, undefined for none', async () => {
    const store = await backend.create();
    expect(await store.getMany([job('1'), job('2')])).toEqual([undefined, undefined]);
    await store.putMany(
      [
        { job: job('1'), route: { queue: 'docker' } },
        { job: job('2'), route: { unmet: 'tags ["gpu"]: no queue' } },
      ],
      NOW,
    );
    expect(await store.getMany([job('2'), job('3'), job('1'), job('2')])).toEqual([
      { unmet: 'tags ["gpu"]: no queue' },
      undefined,
      { queue: 'docker' },
      { unmet: 'tags ["gpu"]: no queue' },
    ]);
    // A job given twice in one write: the last route (DynamoDB refuses a key twice in a request).
    await store.putMany(
      [
        { job: job('4'), route: { queue: 'a' } },
        { job: job('4'), route: { queue: 'b' } },
      ],
      NOW,
    );
    expect(await store.getMany([job('4')])).toEqual([{ queue: 'b' }]);
    expect(await store.getMany([])).toEqual([]);
    await store.putMany([], NOW);
  });

  it('reads and writes more jobs than one batch request takes (100 reads, 25 writes)', async () => {
    const store = await backend.create();
    const ids = Array.from({ length: 230 }, (_, i) => String(1000 + i));
    await store.putMany(
      ids.map((id) => ({ job: job(id), route: { queue: `q${id}` } })),
      NOW,
    );
    expect(await store.getMany(ids.map(job))).toEqual(ids.map((id) => ({ queue: `q${id}` })));
  });

  it('a store that cannot be reached throws, so the caller leaves the events in the queue', async () => {
    const store = await backend.broken();
    await expect(store.getMany([job('1')])).rejects.toThrow();
    await expect(store.putMany([{ job: job('1'), route: { queue: 'docker' } }], NOW)).rejects.toThrow();
  });
});

describe('DynamoRouteStore batches (UnprocessedKeys / UnprocessedItems)', () => {
  const key = (id: string) => ({ pk: `JOB#gitlab:${id}`, sk: ROUTE_SK });
  /** A client of its own with a mocked send (the other tests' client is left alone). */
  const mocked = () => {
    const client = DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1' }));
    return { client, mock: mockClient(client) };
  };

  it('resends the keys BatchGetItem left unprocessed, with ConsistentRead, at most 100 a request', async () => {
    const { mock, client } = mocked();
    mock
      .on(BatchGetCommand)
      .resolvesOnce({
        Responses: { t: [{ ...key('1'), queue: 'docker' }] },
        UnprocessedKeys: { t: { Keys: [key('2')], ConsistentRead: true } },
      })
      .resolvesOnce({ Responses: { t: [{ ...key('2'), unmet: 'no queue' }] } })
      .resolves({ Responses: { t: [] } });
    const store = new DynamoRouteStore({ tableName: 't', client, unprocessedBackoffMs: 1 });
    expect(await store.getMany([job('1'), job('2'), job('3')])).toEqual([
      { queue: 'docker' },
      { unmet: 'no queue' },
      undefined,
    ]);
    const sent = mock.commandCalls(BatchGetCommand).map((c) => c.args[0].input.RequestItems?.t);
    expect(sent).toEqual([
      { Keys: [key('1'), key('2'), key('3')], ConsistentRead: true },
      { Keys: [key('2')], ConsistentRead: true },
    ]);
    mock.reset();
    mock.on(BatchGetCommand).resolves({ Responses: { t: [] } });
    await store.getMany(Array.from({ length: 250 }, (_, i) => job(String(i))));
    const sizes = mock.commandCalls(BatchGetCommand).map((c) => c.args[0].input.RequestItems?.t?.Keys?.length);
    expect(sizes).toEqual([100, 100, 50]);
  });

  it('resends the items BatchWriteItem left unprocessed, at most 25 a request', async () => {
    const { mock, client } = mocked();
    const store = new DynamoRouteStore({ tableName: 't', client, unprocessedBackoffMs: 1 });
    let throttled = false;
    mock.on(BatchWriteCommand).callsFake((input: { RequestItems: Record<string, { PutRequest?: unknown }[]> }) => {
      const puts = input.RequestItems.t ?? [];
      // The request of 25 gets its last item back unprocessed, once.
      const unprocessed = puts.length === 25 && !throttled ? puts.slice(-1) : [];
      throttled ||= unprocessed.length > 0;
      return { UnprocessedItems: unprocessed.length > 0 ? { t: unprocessed } : {} };
    });
    await store.putMany(
      Array.from({ length: 30 }, (_, i) => ({ job: job(String(i)), route: { queue: 'docker' } })),
      NOW,
    );
    const sent = mock.commandCalls(BatchWriteCommand).map((c) => c.args[0].input.RequestItems?.t ?? []);
    expect(sent.map((puts) => puts.length).sort((a, b) => a - b)).toEqual([1, 5, 25]);
    const resent = sent.find((puts) => puts.length === 1);
    expect(resent?.[0]?.PutRequest?.Item).toMatchObject({
      ...key('24'),
      queue: 'docker',
      expiresAt: expect.any(Number),
    });
  });

  it('keys left unprocessed after every resend make the read fail (nothing is guessed)', async () => {
    const { mock, client } = mocked();
    mock.on(BatchGetCommand).resolves({ Responses: { t: [] }, UnprocessedKeys: { t: { Keys: [key('1')] } } });
    mock.on(BatchWriteCommand).resolves({ UnprocessedItems: { t: [{ PutRequest: { Item: key('1') } }] } });
    const store = new DynamoRouteStore({
      tableName: 't',
      client,
      unprocessedRetries: 2,
      unprocessedBackoffMs: 1,
    });
    await expect(store.getMany([job('1')])).rejects.toThrow(/BatchGetItem left 1 route key\(s\) unprocessed after 3/);
    await expect(store.putMany([{ job: job('1'), route: { queue: 'q' } }], NOW)).rejects.toThrow(
      /BatchWriteItem left 1 route\(s\) unprocessed after 3/,
    );
    expect(mock.commandCalls(BatchGetCommand)).toHaveLength(3);
  });
});

describe('GitLab router over DynamoDB: requests per CI job', () => {
  const routing = {
    queues: [
      { ...defaultQueueAgents('docker', 'gitlab'), runnerTags: ['docker'] },
      { ...defaultQueueAgents('shared', 'gitlab'), runUntagged: true },
    ],
    buildkiteDefaultQueue: 'default',
  };
  const api = () => createGitlabJobsApi({ url: gitlab.url, token: async () => gitlab.token });

  function event(jobId: string, kind: JobEventKind = 'scheduled'): QueuedJobEvent {
    return {
      id: eventId('gitlab', jobId, kind),
      provider: 'gitlab',
      jobId,
      gitlabProjectId: '380',
      kind,
      occurredAt: at(-7200),
      receivedAt: at(-7200),
      trace: {},
    };
  }

  it('a batch of N new jobs: one batched read and one batched write per 25; later events: no request', async () => {
    const store = await dynamoStore();
    const ids = Array.from({ length: 30 }, (_, i) => String(500 + i));
    for (const id of ids) gitlab.addJob({ projectId: '380', jobId: id, tags: Number(id) % 2 ? ['docker'] : [] });
    const queueOf = (id: string) => (Number(id) % 2 ? 'docker' : 'shared');
    const router = createGitlabRouter({ api: api(), store, routing, now: Date.now });

    const scheduled = await router.resolve(ids.map((id) => event(id)));
    expect(scheduled).toEqual(ids.map((id) => ({ event: { ...event(id), queue: queueOf(id) } })));
    expect(requests).toEqual({ BatchGetItem: 1, BatchWriteItem: 2 });

    // started and finished, in other batches, of the same process: the routes are in memory.
    for (const kind of ['started', 'finished'] as const) {
      const outcomes = await router.resolve(ids.map((id) => event(id, kind)));
      expect(outcomes).toEqual(ids.map((id) => ({ event: { ...event(id, kind), queue: queueOf(id) } })));
    }
    expect(requests).toEqual({ BatchGetItem: 1, BatchWriteItem: 2 });
    for (const id of ids) expect(gitlab.lookups(id)).toBe(1);

    // Another process (another Lambda container) finds the stored routes in one read, and asks
    // GitLab nothing.
    const other = createGitlabRouter({ api: api(), store, routing, now: Date.now });
    const finished = await other.resolve(ids.map((id) => event(id, 'finished')));
    expect(finished).toEqual(ids.map((id) => ({ event: { ...event(id, 'finished'), queue: queueOf(id) } })));
    expect(requests).toEqual({ BatchGetItem: 2, BatchWriteItem: 2 });
    for (const id of ids) expect(gitlab.lookups(id)).toBe(1);
  });

  it('the memory is bounded: a job dropped from it is read from the store again, not looked up', async () => {
    const store = await dynamoStore();
    for (const id of ['1', '2', '3']) gitlab.addJob({ projectId: '380', jobId: id, tags: [] });
    const router = createGitlabRouter({ api: api(), store, routing, now: Date.now, cacheSize: 2 });
    await router.resolve([event('1'), event('2'), event('3')]);
    expect(requests).toEqual({ BatchGetItem: 1, BatchWriteItem: 1 });
    // Jobs 2 and 3 are the most recent: in memory. Job 1 was dropped: one read, no lookup.
    expect(await router.resolve([event('2', 'started'), event('3', 'started')])).toEqual([
      { event: { ...event('2', 'started'), queue: 'shared' } },
      { event: { ...event('3', 'started'), queue: 'shared' } },
    ]);
    expect(requests).toEqual({ BatchGetItem: 1, BatchWriteItem: 1 });
    expect(await router.resolve([event('1', 'started')])).toEqual([
      { event: { ...event('1', 'started'), queue: 'shared' } },
    ]);
    expect(requests).toEqual({ BatchGetItem: 2, BatchWriteItem: 1 });
    expect(gitlab.lookups('1')).toBe(1);
  });

  it('DynamoDB unreachable: every unknown job fails (stays in SQS), nothing is looked up or guessed', async () => {
    gitlab.addJob({ projectId: '380', jobId: '9', tags: ['docker'] });
    const broken = new DynamoRouteStore({ tableName: 'no-such-table', client: docClient! });
    const router = createGitlabRouter({ api: api(), store: broken, routing, now: Date.now });
    expect(await router.resolve([event('9'), event('9', 'started'), event('10')])).toEqual([
      { failed: expect.stringMatching(/route of gitlab job 9 unreadable: .*ResourceNotFound/) },
      { failed: expect.stringMatching(/route of gitlab job 9 unreadable/) },
      { failed: expect.stringMatching(/route of gitlab job 10 unreadable/) },
    ]);
    expect(gitlab.lookups('9')).toBe(0);
  });

  it('a route learned while the write failed is still used by this process, and by others after a lookup', async () => {
    gitlab.addJob({ projectId: '380', jobId: '11', tags: ['docker'] });
    const store = new InMemoryRouteStore();
    const router = createGitlabRouter({ api: api(), store, routing, now: Date.now });
    const failingWrite: RouteStore = {
      getMany: (jobs) => store.getMany(jobs),
      putMany: async () => Promise.reject(new Error('throttled')),
    };
    const writeless = createGitlabRouter({ api: api(), store: failingWrite, routing, now: Date.now });
    expect(await writeless.resolve([event('11')])).toEqual([{ event: { ...event('11'), queue: 'docker' } }]);
    expect(await writeless.resolve([event('11', 'started')])).toEqual([
      { event: { ...event('11', 'started'), queue: 'docker' } },
    ]);
    expect(gitlab.lookups('11')).toBe(1);
    // Not stored: another process looks it up again, and finds the same route.
    expect(await router.resolve([event('11', 'finished')])).toEqual([
      { event: { ...event('11', 'finished'), queue: 'docker' } },
    ]);
    expect(gitlab.lookups('11')).toBe(2);
  });
});
