/**
 * Committed cache entries in their own DynamoDB table (infra/aws/cache.yml): partition `scope`
 * (<namespace>/<serviceaccount>), sort `key`. An item exists only for an entry whose object is
 * complete in S3; it is written once, conditionally, so the first completed save of a key wins.
 * `expiresAt` (TTL) is a backstop a day after retention; the daily sweep deletes expired entries
 * with their objects first.
 */
import { DeleteCommand, GetCommand, PutCommand, QueryCommand, ScanCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { CacheEntry } from '../../core/cache/model.js';
import { dynamoClient, isConditionFailure } from './client.js';

export interface CacheStore {
  get(scope: string, key: string): Promise<CacheEntry | undefined>;
  /** Entries of a scope whose key starts with `prefix` (all of them for ''). */
  query(scope: string, prefix: string): Promise<CacheEntry[]>;
  /** Writes the entry unless its key exists; false when another save won. */
  commit(entry: CacheEntry, expiresAt: number): Promise<boolean>;
  /** Records a restore (LRU), unless the entry changed meanwhile. */
  touch(entry: CacheEntry, now: number, expiresAt: number): Promise<void>;
  /** Deletes the entry if it still points at the same object; false otherwise. */
  remove(entry: CacheEntry): Promise<boolean>;
  scan(): AsyncIterable<CacheEntry>;
}

function toEntry(item: Record<string, unknown>): CacheEntry {
  return {
    scope: String(item.scope),
    key: String(item.key),
    objectKey: String(item.objectKey),
    size: Number(item.size),
    createdAt: Number(item.createdAt),
    lastUsedAt: Number(item.lastUsedAt),
  };
}

export function dynamoCacheStore(table: string): CacheStore {
  return {
    async get(scope, key) {
      const out = await dynamoClient().send(
        new GetCommand({ TableName: table, Key: { scope, key }, ConsistentRead: true }),
      );
      return out.Item ? toEntry(out.Item) : undefined;
    },
    async query(scope, prefix) {
      const entries: CacheEntry[] = [];
      let start: Record<string, unknown> | undefined;
      do {
        const out = await dynamoClient().send(
          new QueryCommand({
            TableName: table,
            KeyConditionExpression: prefix === '' ? '#s = :s' : '#s = :s AND begins_with(#k, :p)',
            ExpressionAttributeNames: prefix === '' ? { '#s': 'scope' } : { '#s': 'scope', '#k': 'key' },
            ExpressionAttributeValues: prefix === '' ? { ':s': scope } : { ':s': scope, ':p': prefix },
            ConsistentRead: true,
            ...(start ? { ExclusiveStartKey: start } : {}),
          }),
        );
        for (const item of out.Items ?? []) entries.push(toEntry(item));
        start = out.LastEvaluatedKey;
      } while (start);
      return entries;
    },
    async commit(entry, expiresAt) {
      try {
        await dynamoClient().send(
          new PutCommand({
            TableName: table,
            Item: { ...entry, expiresAt },
            ConditionExpression: 'attribute_not_exists(#k)',
            ExpressionAttributeNames: { '#k': 'key' },
          }),
        );
        return true;
      } catch (error) {
        if (isConditionFailure(error)) return false;
        throw error;
      }
    },
    async touch(entry, now, expiresAt) {
      try {
        await dynamoClient().send(
          new UpdateCommand({
            TableName: table,
            Key: { scope: entry.scope, key: entry.key },
            UpdateExpression: 'SET lastUsedAt = :now, expiresAt = :exp',
            ConditionExpression: 'objectKey = :o AND lastUsedAt < :now',
            ExpressionAttributeValues: { ':now': now, ':exp': expiresAt, ':o': entry.objectKey },
          }),
        );
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
      }
    },
    async remove(entry) {
      try {
        await dynamoClient().send(
          new DeleteCommand({
            TableName: table,
            Key: { scope: entry.scope, key: entry.key },
            ConditionExpression: 'objectKey = :o',
            ExpressionAttributeValues: { ':o': entry.objectKey },
          }),
        );
        return true;
      } catch (error) {
        if (isConditionFailure(error)) return false;
        throw error;
      }
    },
    async *scan() {
      let start: Record<string, unknown> | undefined;
      do {
        const out = await dynamoClient().send(
          new ScanCommand({ TableName: table, ...(start ? { ExclusiveStartKey: start } : {}) }),
        );
        for (const item of out.Items ?? []) yield toEntry(item);
        start = out.LastEvaluatedKey;
      } while (start);
    },
  };
}
