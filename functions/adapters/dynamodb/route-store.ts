/**
 * Routes of CI jobs in the ledger table: item `JOB#<provider>:<jobId>` / `ROUTE` (next to the
 * job's own `JOB` item), with `queue` or `unmet`, and a TTL. Written once per CI job after the
 * lookup; the value is a function of the job's tags and the configuration, so a concurrent
 * second write (two scalers looking the same job up) writes the same thing.
 */
import { type DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { jobPk } from '../../core/ledger.js';
import type { RouteStore, StoredRoute } from '../../core/stores.js';
import { dynamoClient } from './client.js';

export const ROUTE_SK = 'ROUTE';

export interface DynamoRouteStoreOptions {
  readonly tableName: string;
  readonly client?: DynamoDBDocumentClient;
  /** Kept this long (default 8 days: the ledger's retention plus the open-job age limit). */
  readonly retentionSeconds?: number;
}

export class DynamoRouteStore implements RouteStore {
  private readonly client: DynamoDBDocumentClient;
  private readonly retentionSeconds: number;

  constructor(private readonly options: DynamoRouteStoreOptions) {
    this.client = options.client ?? dynamoClient();
    this.retentionSeconds = options.retentionSeconds ?? 8 * 86_400;
  }

  async get(job: Parameters<RouteStore['get']>[0]): Promise<StoredRoute | undefined> {
    const { Item } = await this.client.send(
      new GetCommand({
        TableName: this.options.tableName,
        Key: { pk: jobPk(job), sk: ROUTE_SK },
        ConsistentRead: true,
      }),
    );
    if (typeof Item?.queue === 'string') return { queue: Item.queue };
    if (typeof Item?.unmet === 'string') return { unmet: Item.unmet };
    return undefined;
  }

  async put(job: Parameters<RouteStore['put']>[0], route: StoredRoute, now: Date): Promise<void> {
    await this.client.send(
      new PutCommand({
        TableName: this.options.tableName,
        Item: {
          pk: jobPk(job),
          sk: ROUTE_SK,
          ...route,
          updatedAt: now.toISOString(),
          expiresAt: Math.floor(now.getTime() / 1000) + this.retentionSeconds,
        },
      }),
    );
  }
}
