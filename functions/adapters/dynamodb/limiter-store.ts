/**
 * The in-flight limiter and dispatch intents in DynamoDB (data model: infra/aws/ledger-table.yml).
 *
 *   LIMITER  / <queue>                inFlight, version (+1 on every change), updatedAt
 *   DISPATCH / <queue>#<dispatchId>   queue, dispatchId, jobName, count, tokens, status,
 *                                     createdAt, leaseUntil, attempts, settled, createsUntil
 *
 * reserve() takes tokens and writes the intent in ONE transaction, conditional on the limiter's
 * version (optimistic concurrency) and on inFlight + count <= max, so concurrent scaler
 * invocations can never together exceed max and a token is never held without its intent.
 * Reads are strongly consistent Queries of the two partitions (both hold one item per queue /
 * per live dispatch, so they stay small).
 */
import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import {
  DeleteCommand,
  type DynamoDBDocumentClient,
  QueryCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type {
  CorrectRequest,
  DispatchRecord,
  LimiterSnapshot,
  LimiterStore,
  ReserveRequest,
} from '../../core/stores.js';
import { dynamoClient, isConditionFailure } from './client.js';

export const LIMITER_PK = 'LIMITER';
export const DISPATCH_PK = 'DISPATCH';

export function dispatchSk(dispatch: Pick<DispatchRecord, 'queue' | 'dispatchId'>): string {
  return `${dispatch.queue}#${dispatch.dispatchId}`;
}

export interface DynamoLimiterStoreOptions {
  readonly tableName: string;
  readonly client?: DynamoDBDocumentClient;
  /** Clock for updatedAt (tests). */
  readonly now?: () => Date;
}

/** A cancelled transaction whose every reason is a condition failure or a concurrent transaction. */
function isTransactionConflict(error: unknown): boolean {
  const name = (error as Error | undefined)?.name;
  if (name === 'TransactionConflictException') return true;
  if (!(error instanceof TransactionCanceledException) && name !== 'TransactionCanceledException') return false;
  const reasons = (error as TransactionCanceledException).CancellationReasons ?? [];
  return reasons.every(
    (r) => !r.Code || r.Code === 'None' || r.Code === 'ConditionalCheckFailed' || r.Code === 'TransactionConflict',
  );
}

/** Condition: the item's create attempts are still those read (absent on a pre-fencing item). */
function sameAttempts(dispatch: DispatchRecord): { condition: string; values?: Record<string, unknown> } {
  return dispatch.attempts === undefined
    ? { condition: 'attribute_not_exists(#attempts)' }
    : { condition: '#attempts = :attempts', values: { ':attempts': dispatch.attempts } };
}

export class DynamoLimiterStore implements LimiterStore {
  private readonly tableName: string;
  private readonly client: DynamoDBDocumentClient;
  private readonly now: () => Date;

  constructor(options: DynamoLimiterStoreOptions) {
    this.tableName = options.tableName;
    this.client = options.client ?? dynamoClient();
    this.now = options.now ?? (() => new Date());
  }

  async snapshot(): Promise<LimiterSnapshot> {
    // One after the other, limiters first: the two queries are not one atomic read. A
    // reservation committed after the limiter read bumps the version, so any correction or
    // reservation decided on this snapshot is refused; read in parallel, a reservation could
    // land between the two reads, be missing from the dispatches yet counted in a version the
    // caller believes current, and the caller would "correct" its tokens away.
    const limiterItems = await this.queryAll(LIMITER_PK);
    const dispatchItems = await this.queryAll(DISPATCH_PK);
    return {
      limiters: limiterItems.map((item) => ({
        queue: item.sk as string,
        inFlight: Number(item.inFlight ?? 0),
        version: Number(item.version ?? 0),
      })),
      dispatches: dispatchItems.map((item) => ({
        queue: item.queue as string,
        dispatchId: item.dispatchId as string,
        jobName: item.jobName as string,
        count: Number(item.count),
        tokens: Number(item.tokens),
        status: item.status as DispatchRecord['status'],
        createdAt: Number(item.createdAt),
        leaseUntil: Number(item.leaseUntil),
        ...(item.attempts === undefined ? {} : { attempts: Number(item.attempts) }),
        ...(item.settled === undefined ? {} : { settled: Number(item.settled) }),
        ...(item.createsUntil === undefined ? {} : { createsUntil: Number(item.createsUntil) }),
      })),
    };
  }

  private async queryAll(pk: string): Promise<Record<string, unknown>[]> {
    const items: Record<string, unknown>[] = [];
    let ExclusiveStartKey: Record<string, unknown> | undefined;
    do {
      const page = await this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'pk = :pk',
          ExpressionAttributeValues: { ':pk': pk },
          ConsistentRead: true,
          ExclusiveStartKey,
        }),
      );
      items.push(...(page.Items ?? []));
      ExclusiveStartKey = page.LastEvaluatedKey;
    } while (ExclusiveStartKey);
    return items;
  }

  async reserve(request: ReserveRequest): Promise<'reserved' | 'conflict'> {
    const { queue, count, max, expectedVersion, dispatch } = request;
    if (!Number.isInteger(count) || count < 1)
      throw new RangeError(`reserve: count must be an integer >= 1, got ${count}`);
    if (dispatch.queue !== queue)
      throw new RangeError(`reserve: dispatch of queue ${dispatch.queue} for queue ${queue}`);
    if (count > max) return 'conflict';
    // expectedVersion 0: the caller saw no limiter (or one never changed): accept creating it.
    const condition =
      expectedVersion === 0
        ? 'attribute_not_exists(pk) OR (#version = :expected AND #inFlight <= :maxMinusCount)'
        : '#version = :expected AND #inFlight <= :maxMinusCount';
    try {
      await this.client.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Update: {
                TableName: this.tableName,
                Key: { pk: LIMITER_PK, sk: queue },
                UpdateExpression:
                  'SET #inFlight = if_not_exists(#inFlight, :zero) + :count, #version = if_not_exists(#version, :zero) + :one, #updatedAt = :now',
                ConditionExpression: condition,
                ExpressionAttributeNames: { '#inFlight': 'inFlight', '#version': 'version', '#updatedAt': 'updatedAt' },
                ExpressionAttributeValues: {
                  ':zero': 0,
                  ':one': 1,
                  ':count': count,
                  ':expected': expectedVersion,
                  ':maxMinusCount': max - count,
                  ':now': this.now().toISOString(),
                },
              },
            },
            {
              Put: {
                TableName: this.tableName,
                Item: { pk: DISPATCH_PK, sk: dispatchSk(dispatch), ...dispatch },
                ConditionExpression: 'attribute_not_exists(pk)',
              },
            },
          ],
        }),
      );
      return 'reserved';
    } catch (error) {
      if (isTransactionConflict(error)) return 'conflict';
      throw error;
    }
  }

  async markSubmitted(dispatch: DispatchRecord): Promise<boolean> {
    return this.updateDispatch(
      dispatch,
      'SET #status = :value',
      undefined,
      { '#status': 'status' },
      { ':value': 'submitted' },
    );
  }

  async beginCreate(dispatch: DispatchRecord, createsUntil: number): Promise<boolean> {
    const attempts = sameAttempts(dispatch);
    return this.updateDispatch(
      dispatch,
      'SET #attempts = :next, #createsUntil = :until',
      `#status = :intent AND ${attempts.condition}`,
      { '#status': 'status', '#attempts': 'attempts', '#createsUntil': 'createsUntil' },
      { ':next': (dispatch.attempts ?? 1) + 1, ':until': createsUntil, ':intent': 'intent', ...attempts.values },
    );
  }

  async settleCreate(dispatch: DispatchRecord, landed: boolean): Promise<boolean> {
    return this.updateDispatch(
      dispatch,
      `SET #settled = if_not_exists(#settled, :zero) + :one${landed ? ', #status = :submitted' : ''}`,
      undefined,
      { '#settled': 'settled', ...(landed ? { '#status': 'status' } : {}) },
      { ':zero': 0, ':one': 1, ...(landed ? { ':submitted': 'submitted' } : {}) },
    );
  }

  async setTokens(dispatch: DispatchRecord, tokens: number): Promise<boolean> {
    const attempts = sameAttempts(dispatch);
    return this.updateDispatch(
      dispatch,
      'SET #tokens = :value',
      attempts.condition,
      { '#tokens': 'tokens', '#attempts': 'attempts' },
      { ':value': tokens, ...attempts.values },
    );
  }

  private async updateDispatch(
    dispatch: DispatchRecord,
    update: string,
    condition: string | undefined,
    names: Record<string, string>,
    values: Record<string, unknown>,
  ): Promise<boolean> {
    try {
      await this.client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: DISPATCH_PK, sk: dispatchSk(dispatch) },
          UpdateExpression: update,
          ConditionExpression: condition ? `attribute_exists(pk) AND ${condition}` : 'attribute_exists(pk)',
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  async release(dispatch: DispatchRecord): Promise<boolean> {
    const attempts = sameAttempts(dispatch);
    try {
      await this.client.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: { pk: DISPATCH_PK, sk: dispatchSk(dispatch) },
          ConditionExpression: `attribute_not_exists(pk) OR ${attempts.condition}`,
          ExpressionAttributeNames: { '#attempts': 'attempts' },
          ...(attempts.values ? { ExpressionAttributeValues: attempts.values } : {}),
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  async correct(request: CorrectRequest): Promise<boolean> {
    const { queue, expectedVersion, inFlight } = request;
    if (!Number.isInteger(inFlight) || inFlight < 0)
      throw new RangeError(`correct: inFlight must be an integer >= 0, got ${inFlight}`);
    try {
      await this.client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: LIMITER_PK, sk: queue },
          UpdateExpression:
            'SET #inFlight = :inFlight, #version = if_not_exists(#version, :zero) + :one, #updatedAt = :now',
          ConditionExpression:
            expectedVersion === 0 ? 'attribute_not_exists(pk) OR #version = :expected' : '#version = :expected',
          ExpressionAttributeNames: { '#inFlight': 'inFlight', '#version': 'version', '#updatedAt': 'updatedAt' },
          ExpressionAttributeValues: {
            ':inFlight': inFlight,
            ':zero': 0,
            ':one': 1,
            ':expected': expectedVersion,
            ':now': this.now().toISOString(),
          },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }
}
