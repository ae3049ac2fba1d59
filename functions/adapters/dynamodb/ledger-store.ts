/**
 * The CI job ledger in DynamoDB (data model: infra/aws/ledger-table.yml).
 *
 * apply(): coalesce the batch to one event per job (functions/core/ledger.ts), then one
 * conditional update per job that only moves the job forward:
 *   attribute_not_exists(pk) OR #rank < :rank   (+ OR #state = cancelled, for a finished event)
 * A failed condition means the job is already at or beyond the event: a no-op, not an error.
 * The updates of a batch go in TransactWriteItems of up to `transactionSize` items (one request
 * for an SQS batch instead of ten; each update keeps its own condition). A transaction whose
 * conditions failed for some items is cancelled as a whole: those items are no-ops, the others
 * are written again in a smaller transaction. Any other refusal (throttling, a validation error
 * of one item, the SDK's retries spent) falls back to one UpdateItem per job, so one bad item
 * never fails the others. A transactional write costs 2 write units per item instead of 1: a few
 * cents per million CI jobs, for ten times fewer requests and round trips.
 *
 * counts(): two Queries per queue on the KEYS_ONLY GSI `open-jobs`: Select COUNT of the
 * scheduled jobs, and the openAt (start time) of each running one (openKey = `<queue>#scheduled` /
 * `<queue>#started`; terminal jobs have no openKey, so the index holds only open jobs and stays
 * small however long the table's history is). With a cap (CountOptions), both stop reading at
 * the cap (Limit; the running jobs newest first), so a tick reads O(MAX_AGENTS) index entries
 * however large the backlog.
 * A GSI is EVENTUALLY consistent (ConsistentRead is not allowed on it): a transition just applied
 * may show in the counts up to about a second late (typically milliseconds). The scaler may then
 * see a job as still pending, or not yet pending, for one tick; the next tick reads the corrected
 * counts, and the in-flight limiter (strongly consistent) still caps what can be provisioned.
 */
import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import {
  type DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { boundTrace, type JobEvent } from '../../core/job-event.js';
import {
  coalesceGroups,
  DEFAULT_OPEN_MAX_AGE_HOURS,
  isTerminal,
  jobPk,
  openAtOf,
  openKeyOf,
  rankOf,
} from '../../core/ledger.js';
import type { ApplyOutcome, CountOptions, LedgerJobRecord, LedgerStore, QueueCounts } from '../../core/stores.js';
import { chunks, mapLimit } from '../../shared/concurrency.js';
import { describeError } from '../../shared/errors.js';
import { dynamoClient, isConditionFailure } from './client.js';

export const OPEN_JOBS_INDEX = 'open-jobs';
export const JOB_SK = 'JOB';
/** DynamoDB's limit of items per TransactWriteItems. */
const MAX_TRANSACTION_ITEMS = 100;

type Outcome = Omit<ApplyOutcome, 'eventId'>;

/**
 * The per-item codes of a cancelled transaction when it was cancelled only by failed conditions
 * or a concurrent transaction (then the items coded 'None' or 'TransactionConflict' may simply be
 * written again); undefined for any other failure.
 */
function cancellationCodes(error: unknown, items: number): string[] | undefined {
  const name = (error as Error | undefined)?.name;
  if (!(error instanceof TransactionCanceledException) && name !== 'TransactionCanceledException') return undefined;
  const codes = ((error as TransactionCanceledException).CancellationReasons ?? []).map((r) => r.Code ?? 'None');
  if (codes.length !== items) return undefined;
  const retryable = new Set(['None', 'ConditionalCheckFailed', 'TransactionConflict']);
  return codes.every((c) => retryable.has(c)) ? codes : undefined;
}

export interface DynamoLedgerStoreOptions {
  readonly tableName: string;
  /** Default: the shared client of ./client.ts (SDK retries cover throttling). */
  readonly client?: DynamoDBDocumentClient;
  /** Finished/cancelled jobs expire (TTL) this many days after they closed. Default 7. */
  readonly retentionDays?: number;
  /** Writes (single updates or transactions) in flight at once. Default 24. */
  readonly concurrency?: number;
  /** Updates per TransactWriteItems (1..100; 1 = one UpdateItem per job). Default 25. */
  readonly transactionSize?: number;
  /** Open jobs whose last event is older than this are not counted. Default 24. */
  readonly openMaxAgeHours?: number;
}

export class DynamoLedgerStore implements LedgerStore {
  private readonly tableName: string;
  private readonly client: DynamoDBDocumentClient;
  private readonly retentionSeconds: number;
  private readonly concurrency: number;
  private readonly openMaxAgeSeconds: number;
  private readonly transactionSize: number;

  constructor(options: DynamoLedgerStoreOptions) {
    this.tableName = options.tableName;
    this.client = options.client ?? dynamoClient();
    this.retentionSeconds = Math.round((options.retentionDays ?? 7) * 86_400);
    this.concurrency = Math.max(1, options.concurrency ?? 24);
    this.openMaxAgeSeconds = Math.round((options.openMaxAgeHours ?? DEFAULT_OPEN_MAX_AGE_HOURS) * 3600);
    this.transactionSize = Math.max(1, Math.min(MAX_TRANSACTION_ITEMS, Math.floor(options.transactionSize ?? 25)));
  }

  async apply(events: readonly JobEvent[], now: Date): Promise<ApplyOutcome[]> {
    const outcomes = new Array<ApplyOutcome>(events.length);
    const groups = coalesceGroups(events);
    await mapLimit(chunks(groups, this.transactionSize), this.concurrency, async (chunk) => {
      const results = await this.writeChunk(
        chunk.map((g) => g.event),
        now,
      );
      chunk.forEach((group, i) => {
        const outcome = results[i] ?? { result: 'failed', error: 'no result for the write' };
        // Merged events share the fate of the event that represented them: 'applied' means the
        // job is durably at the furthest event of the group, hence at or beyond every member;
        // 'noop' means it already was; 'failed' means nothing is known, so none may be deleted.
        for (const index of group.members) {
          const member = events[index];
          if (member) outcomes[index] = { eventId: member.id, ...outcome };
        }
      });
    });
    return outcomes;
  }

  /**
   * Writes events of distinct jobs: transactions while they succeed or fail only on conditions
   * (or on a concurrent transaction), then one UpdateItem per event still unresolved.
   */
  private async writeChunk(events: readonly JobEvent[], now: Date): Promise<Outcome[]> {
    const results = new Array<Outcome>(events.length);
    let pending = events.map((_, i) => i);
    for (let attempt = 0; attempt < 3 && pending.length > 1; attempt++) {
      const items = pending.map((i) => this.update(events[i] as JobEvent, now));
      try {
        await this.client.send(new TransactWriteCommand({ TransactItems: items.map((Update) => ({ Update })) }));
        for (const i of pending) results[i] = { result: 'applied' };
        pending = [];
      } catch (error) {
        const reasons = cancellationCodes(error, pending.length);
        if (!reasons) break;
        const again: number[] = [];
        pending.forEach((i, n) => {
          // Cancelled because of another item ('None') or a concurrent transaction: not written.
          if (reasons[n] === 'ConditionalCheckFailed') results[i] = { result: 'noop' };
          else again.push(i);
        });
        pending = again;
      }
    }
    await mapLimit(pending, this.concurrency, async (i) => {
      try {
        results[i] = { result: (await this.write(events[i] as JobEvent, now)) ? 'applied' : 'noop' };
      } catch (error) {
        results[i] = { result: 'failed', error: describeError(error) };
      }
    });
    return results;
  }

  /** One conditional UpdateItem; true = applied, false = the job was already at or beyond it. */
  private async write(event: JobEvent, now: Date): Promise<boolean> {
    try {
      await this.client.send(new UpdateCommand(this.update(event, now)));
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  /** The conditional update that moves a job forward to `event` (UpdateItem or transaction item). */
  private update(event: JobEvent, now: Date) {
    const terminal = isTerminal(event.kind);
    const values: Record<string, unknown> = {
      ':state': event.kind,
      ':rank': rankOf(event.kind),
      ':queue': event.queue,
      ':provider': event.provider,
      ':jobId': event.jobId,
      ':eventAt': event.occurredAt,
      ':updatedAt': now.toISOString(),
      // Bounded (EVENT_BOUNDS: the item stays a few KB whatever the event carried) and without
      // undefined members, whatever the client's marshall options.
      ':trace': boundTrace(event.trace),
    };
    const set = [
      '#state = :state',
      '#rank = :rank',
      '#queue = :queue',
      '#provider = :provider',
      '#jobId = :jobId',
      '#eventAt = :eventAt',
      '#updatedAt = :updatedAt',
      '#trace = :trace',
    ];
    let update: string;
    if (terminal) {
      values[':expiresAt'] = Math.floor(now.getTime() / 1000) + this.retentionSeconds;
      update = `SET ${set.join(', ')}, #expiresAt = :expiresAt REMOVE #openKey, #openAt`;
    } else {
      // An open job whose closing event never comes stops counting after the open-age limit
      // (counts()) and leaves the table after the retention (TTL).
      const openAt = openAtOf(event, now);
      values[':openKey'] = openKeyOf(event.queue, event.kind);
      values[':openAt'] = openAt;
      values[':expiresAt'] = openAt + this.retentionSeconds;
      update = `SET ${set.join(', ')}, #openKey = :openKey, #openAt = :openAt, #expiresAt = :expiresAt`;
    }
    let condition = 'attribute_not_exists(pk) OR #rank < :rank';
    if (event.kind === 'finished') {
      // finished supersedes cancelled (functions/core/ledger.ts), so the end state does not
      // depend on the order the two arrived in.
      condition += ' OR #state = :cancelled';
      values[':cancelled'] = 'cancelled';
    }
    return {
      TableName: this.tableName,
      Key: { pk: jobPk(event), sk: JOB_SK },
      UpdateExpression: update,
      ConditionExpression: condition,
      ExpressionAttributeNames: {
        '#state': 'state',
        '#rank': 'rank',
        '#queue': 'queue',
        '#provider': 'provider',
        '#jobId': 'jobId',
        '#eventAt': 'eventAt',
        '#updatedAt': 'updatedAt',
        '#trace': 'trace',
        '#expiresAt': 'expiresAt',
        '#openKey': 'openKey',
        '#openAt': 'openAt',
      },
      ExpressionAttributeValues: values,
    };
  }

  /** Strongly consistent read of one job's item. */
  async get(job: Pick<JobEvent, 'provider' | 'jobId'>): Promise<LedgerJobRecord | undefined> {
    const { Item } = await this.client.send(
      new GetCommand({ TableName: this.tableName, Key: { pk: jobPk(job), sk: JOB_SK }, ConsistentRead: true }),
    );
    if (!Item) return undefined;
    const { pk: _pk, sk: _sk, ...record } = Item;
    return record as LedgerJobRecord;
  }

  async counts(queues: readonly string[], now: Date, options: CountOptions = {}): Promise<Record<string, QueueCounts>> {
    const unique = [...new Set(queues)];
    const since = Math.floor(now.getTime() / 1000) - this.openMaxAgeSeconds;
    const pairs = await mapLimit(unique, this.concurrency, async (queue) => {
      const cap = options.cap && Object.hasOwn(options.cap, queue) ? options.cap[queue] : undefined;
      const [pending, runningSince] = await Promise.all([
        this.countOpen(openKeyOf(queue, 'scheduled'), since, cap),
        this.openSince(openKeyOf(queue, 'started'), since, cap),
      ]);
      const capped = cap !== undefined && (pending >= cap || runningSince.length >= cap);
      const counts: QueueCounts = {
        pending,
        running: runningSince.length,
        runningSince,
        ...(capped ? { capped } : {}),
      };
      return [queue, counts] as const;
    });
    return Object.fromEntries(pairs);
  }

  /** Open jobs of this key, counting no further than `cap` (index reads stop there). */
  private async countOpen(openKey: string, since: number, cap = Number.POSITIVE_INFINITY): Promise<number> {
    let total = 0;
    await this.queryOpen(openKey, since, { Select: 'COUNT' }, cap, (page) => {
      total += page.Count ?? 0;
      return total;
    });
    return Math.min(total, cap);
  }

  /**
   * The openAt of each open job of this key, ascending; with a cap, only the `cap` latest (read
   * newest first: the index's sort key is openAt).
   */
  private async openSince(openKey: string, since: number, cap = Number.POSITIVE_INFINITY): Promise<number[]> {
    const at: number[] = [];
    await this.queryOpen(openKey, since, { ProjectionExpression: '#openAt' }, cap, (page) => {
      for (const item of page.Items ?? []) at.push(Number(item.openAt));
      return at.length;
    });
    return at.slice(0, cap).reverse();
  }

  /** Pages of the open-jobs index for one key, newest first, until `cap` items were read. */
  private async queryOpen(
    openKey: string,
    since: number,
    select: { Select: 'COUNT' } | { ProjectionExpression: string },
    cap: number,
    onPage: (page: { Count?: number | undefined; Items?: Record<string, unknown>[] | undefined }) => number,
  ): Promise<void> {
    if (cap <= 0) return;
    let ExclusiveStartKey: Record<string, unknown> | undefined;
    let read = 0;
    do {
      const left = cap - read;
      const page = await this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          IndexName: OPEN_JOBS_INDEX,
          KeyConditionExpression: '#openKey = :openKey AND #openAt >= :since',
          ExpressionAttributeNames: { '#openKey': 'openKey', '#openAt': 'openAt' },
          ExpressionAttributeValues: { ':openKey': openKey, ':since': since },
          ScanIndexForward: false,
          ...(Number.isFinite(left) ? { Limit: left } : {}),
          ...select,
          ExclusiveStartKey,
        }),
      );
      read = onPage(page);
      ExclusiveStartKey = read < cap ? page.LastEvaluatedKey : undefined;
    } while (ExclusiveStartKey);
  }
}
