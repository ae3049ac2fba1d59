/**
 * Routes of CI jobs in the ledger table: item `JOB#<provider>:<jobId>` / `ROUTE` (next to the
 * job's own `JOB` item), with `queue` or `unmet`, and a TTL. Written once per CI job after the
 * lookup; the value is a function of the job's tags and the configuration, so a concurrent
 * second write (two scalers looking the same job up) writes the same thing.
 *
 * Read and written in batches: BatchGetItem (up to 100 keys a request, ConsistentRead) and
 * BatchWriteItem (up to 25 puts a request). Either may succeed partly and return the rest in
 * UnprocessedKeys / UnprocessedItems (throttling, an internal failure, a response over 16 MB):
 * those are sent again after an exponential back-off with jitter, as the DynamoDB API reference
 * asks, a bounded number of times; then the call throws. Neither accepts the same key twice in a
 * request, so keys are made unique first.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { BatchGetCommand, BatchWriteCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { jobPk } from '../../core/ledger.js';
import type { RouteJob, RouteStore, StoredRoute } from '../../core/stores.js';
import { chunks } from '../../shared/concurrency.js';
import { dynamoClient } from './client.js';

export const ROUTE_SK = 'ROUTE';

/** BatchGetItem: at most 100 keys a request. */
const MAX_GET_KEYS = 100;
/** BatchWriteItem: at most 25 put or delete requests a request. */
const MAX_WRITE_ITEMS = 25;

export interface DynamoRouteStoreOptions {
  readonly tableName: string;
  readonly client?: DynamoDBDocumentClient;
  /** Kept this long (default 8 days: the ledger's retention plus the open-job age limit). */
  readonly retentionSeconds?: number;
  /** Resends of unprocessed keys/items before giving up (default 5). */
  readonly unprocessedRetries?: number;
  /** First back-off before a resend (default 50 ms), doubling, up to 2 s, with full jitter. */
  readonly unprocessedBackoffMs?: number;
}

type Key = Record<string, unknown>;

function storedRoute(item: Record<string, unknown>): StoredRoute | undefined {
  if (typeof item.queue === 'string') return { queue: item.queue };
  if (typeof item.unmet === 'string') return { unmet: item.unmet };
  return undefined;
}

export class DynamoRouteStore implements RouteStore {
  private readonly client: DynamoDBDocumentClient;
  private readonly retentionSeconds: number;
  private readonly retries: number;
  private readonly backoffMs: number;

  constructor(private readonly options: DynamoRouteStoreOptions) {
    this.client = options.client ?? dynamoClient();
    this.retentionSeconds = options.retentionSeconds ?? 8 * 86_400;
    this.retries = options.unprocessedRetries ?? 5;
    this.backoffMs = options.unprocessedBackoffMs ?? 50;
  }

  async getMany(jobs: readonly RouteJob[]): Promise<(StoredRoute | undefined)[]> {
    const table = this.options.tableName;
    const pks = [...new Set(jobs.map(jobPk))];
    const found = new Map<string, StoredRoute>();
    await Promise.all(
      chunks(pks, MAX_GET_KEYS).map(async (chunk) => {
        let keys: Key[] = chunk.map((pk) => ({ pk, sk: ROUTE_SK }));
        for (let attempt = 0; ; attempt++) {
          const out = await this.client.send(
            new BatchGetCommand({ RequestItems: { [table]: { Keys: keys, ConsistentRead: true } } }),
          );
          for (const item of out.Responses?.[table] ?? []) {
            const route = storedRoute(item);
            if (route && typeof item.pk === 'string') found.set(item.pk, route);
          }
          keys = out.UnprocessedKeys?.[table]?.Keys ?? [];
          if (keys.length === 0) return;
          await this.backOff(attempt, `BatchGetItem left ${keys.length} route key(s) unprocessed`);
        }
      }),
    );
    return jobs.map((job) => found.get(jobPk(job)));
  }

  async putMany(routes: readonly { job: RouteJob; route: StoredRoute }[], now: Date): Promise<void> {
    const table = this.options.tableName;
    const expiresAt = Math.floor(now.getTime() / 1000) + this.retentionSeconds;
    const items = new Map<string, Key>();
    for (const { job, route } of routes) {
      const pk = jobPk(job);
      items.set(pk, { pk, sk: ROUTE_SK, ...route, updatedAt: now.toISOString(), expiresAt });
    }
    await Promise.all(
      chunks([...items.values()], MAX_WRITE_ITEMS).map(async (chunk) => {
        let requests = chunk.map((Item) => ({ PutRequest: { Item } }));
        for (let attempt = 0; ; attempt++) {
          const out = await this.client.send(new BatchWriteCommand({ RequestItems: { [table]: requests } }));
          requests = (out.UnprocessedItems?.[table] ?? []).flatMap((r) =>
            r.PutRequest?.Item ? [{ PutRequest: { Item: r.PutRequest.Item } }] : [],
          );
          if (requests.length === 0) return;
          await this.backOff(attempt, `BatchWriteItem left ${requests.length} route(s) unprocessed`);
        }
      }),
    );
  }

  /** Waits before resend number attempt + 1, or throws when the resends are spent. */
  private async backOff(attempt: number, what: string): Promise<void> {
    if (attempt >= this.retries) throw new Error(`${what} after ${attempt + 1} attempts`);
    await sleep(Math.random() * Math.min(2_000, this.backoffMs * 2 ** attempt));
  }
}
