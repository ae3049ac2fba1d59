/**
 * In-memory LedgerStore with the same semantics as the DynamoDB one (same rules from
 * functions/core/ledger.ts, same outcomes), for the simulator and unit tests. Counts are exact
 * (no GSI lag). `failWith` injects a failure for chosen jobs to exercise the 'failed' path.
 */
import { type JobEvent, jobKey } from '../../../functions/core/job-event.js';
import {
  advance,
  coalesceGroups,
  DEFAULT_OPEN_MAX_AGE_HOURS,
  isTerminal,
  openAtOf,
  openKeyOf,
} from '../../../functions/core/ledger.js';
import type {
  ApplyOutcome,
  CountOptions,
  LedgerJobRecord,
  LedgerStore,
  QueueCounts,
} from '../../../functions/core/stores.js';

export interface InMemoryLedgerStoreOptions {
  readonly retentionDays?: number;
  /** Open jobs whose last event is older than this are not counted. Default 24. */
  readonly openMaxAgeHours?: number;
}

export class InMemoryLedgerStore implements LedgerStore {
  private readonly jobs = new Map<string, LedgerJobRecord>();
  private readonly retentionSeconds: number;
  private readonly openMaxAgeSeconds: number;
  /** Return an error message to make the write of that event fail (nothing is written). */
  failWith: ((event: JobEvent) => string | undefined) | undefined;
  /** Number of writes attempted (one per job per batch), like the DynamoDB store's UpdateItems. */
  writes = 0;

  constructor(options: InMemoryLedgerStoreOptions = {}) {
    this.retentionSeconds = Math.round((options.retentionDays ?? 7) * 86_400);
    this.openMaxAgeSeconds = Math.round((options.openMaxAgeHours ?? DEFAULT_OPEN_MAX_AGE_HOURS) * 3600);
  }

  async apply(events: readonly JobEvent[], now: Date): Promise<ApplyOutcome[]> {
    const outcomes = new Array<ApplyOutcome>(events.length);
    for (const group of coalesceGroups(events)) {
      this.writes++;
      const error = this.failWith?.(group.event);
      let outcome: Omit<ApplyOutcome, 'eventId'>;
      if (error !== undefined) {
        outcome = { result: 'failed', error };
      } else {
        const key = jobKey(group.event);
        const next = advance(this.jobs.get(key), group.event);
        if (next) {
          const openKey = openKeyOf(next.queue, next.state);
          const openAt = openAtOf(group.event, now);
          this.jobs.set(key, {
            ...next,
            trace: { ...next.trace },
            updatedAt: now.toISOString(),
            ...(openKey ? { openKey, openAt } : {}),
            expiresAt: (isTerminal(next.state) ? Math.floor(now.getTime() / 1000) : openAt) + this.retentionSeconds,
          });
        }
        outcome = { result: next ? 'applied' : 'noop' };
      }
      for (const index of group.members) {
        const member = events[index];
        if (member) outcomes[index] = { eventId: member.id, ...outcome };
      }
    }
    return outcomes;
  }

  async counts(queues: readonly string[], now: Date, options: CountOptions = {}): Promise<Record<string, QueueCounts>> {
    const all: Record<string, { pending: number; runningSince: number[] }> = {};
    for (const queue of queues) all[queue] = { pending: 0, runningSince: [] };
    const since = Math.floor(now.getTime() / 1000) - this.openMaxAgeSeconds;
    for (const job of this.jobs.values()) {
      const counts = Object.hasOwn(all, job.queue) ? all[job.queue] : undefined;
      if (!counts || (job.openAt ?? 0) < since) continue;
      if (job.state === 'scheduled') counts.pending++;
      else if (job.state === 'started') counts.runningSince.push(job.openAt ?? 0);
    }
    const result: Record<string, QueueCounts> = {};
    for (const [queue, counts] of Object.entries(all)) {
      const starts = counts.runningSince.sort((a, b) => a - b);
      const cap = options.cap && Object.hasOwn(options.cap, queue) ? options.cap[queue] : undefined;
      // The same figures the DynamoDB store reads when it stops at the cap.
      const runningSince = cap === undefined ? starts : starts.slice(Math.max(0, starts.length - cap));
      const pending = cap === undefined ? counts.pending : Math.min(counts.pending, cap);
      const capped = cap !== undefined && (pending >= cap || runningSince.length >= cap);
      result[queue] = { pending, running: runningSince.length, runningSince, ...(capped ? { capped } : {}) };
    }
    return result;
  }

  async get(job: Pick<JobEvent, 'provider' | 'jobId'>): Promise<LedgerJobRecord | undefined> {
    const record = this.jobs.get(jobKey(job));
    return record ? structuredClone(record) : undefined;
  }

  /** Every stored job (simulator and tests). */
  all(): LedgerJobRecord[] {
    return [...this.jobs.values()].map((record) => structuredClone(record));
  }
}
