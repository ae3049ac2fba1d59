/**
 * The learned warm pool's history in the ledger table (data model: infra/aws/ledger-table.yml):
 *
 *   WARM / <queue>   version (+1 on every write), updatedAt, data: the queue's learning
 *                    (core/arrival-model.ts encodeArrivals), gzip-compressed, a Binary attribute
 *
 * One item per queue, read with GetItem (strongly consistent) and written whole with PutItem on
 * the condition that its version is still the one read (attribute_not_exists(pk) for the first
 * write): two scaler invocations learning at once never overwrite each other; the one that loses
 * reads again and re-applies its arrivals (scaler/warm-learning.ts). A week learned for a busy
 * queue is a few tens of KB compressed (measured in test/integration/arrival-history-store.test.ts),
 * well inside DynamoDB's 400 KB item limit.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import { type DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import {
  type ArrivalHistoryStore,
  decodeArrivals,
  encodeArrivals,
  type StoredArrivals,
} from '../../core/arrival-model.js';
import { dynamoClient, isConditionFailure } from './client.js';

export const WARM_PK = 'WARM';

export interface DynamoArrivalHistoryStoreOptions {
  readonly tableName: string;
  readonly client?: DynamoDBDocumentClient;
}

/** The item's `data` attribute for a queue's learning (exported to measure the item size). */
export function arrivalsData(arrivals: StoredArrivals): Uint8Array {
  return gzipSync(encodeArrivals(arrivals));
}

export class DynamoArrivalHistoryStore implements ArrivalHistoryStore {
  private readonly client: DynamoDBDocumentClient;

  constructor(private readonly options: DynamoArrivalHistoryStoreOptions) {
    this.client = options.client ?? dynamoClient();
  }

  async get(queue: string): Promise<{ arrivals: StoredArrivals; version: number } | undefined> {
    const out = await this.client.send(
      new GetCommand({ TableName: this.options.tableName, Key: { pk: WARM_PK, sk: queue }, ConsistentRead: true }),
    );
    const item = out.Item;
    if (!item) return undefined;
    const { version, data } = item;
    if (typeof version !== 'number' || !(data instanceof Uint8Array))
      throw new Error(`warm pool history of queue ${JSON.stringify(queue)}: item without version or data`);
    return { arrivals: decodeArrivals(gunzipSync(data).toString('utf8')), version };
  }

  async put(queue: string, arrivals: StoredArrivals, version: number | undefined, now: Date): Promise<boolean> {
    try {
      await this.client.send(
        new PutCommand({
          TableName: this.options.tableName,
          Item: {
            pk: WARM_PK,
            sk: queue,
            version: (version ?? 0) + 1,
            updatedAt: now.toISOString(),
            data: arrivalsData(arrivals),
          },
          ...(version === undefined
            ? { ConditionExpression: 'attribute_not_exists(pk)' }
            : {
                ConditionExpression: '#version = :version',
                ExpressionAttributeNames: { '#version': 'version' },
                ExpressionAttributeValues: { ':version': version },
              }),
        }),
      );
      return true;
    } catch (e) {
      if (isConditionFailure(e)) return false;
      throw e;
    }
  }
}
