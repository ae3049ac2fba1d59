/**
 * Rules of the CI job ledger. Pure: no I/O.
 *
 * A job's state only moves forward: scheduled (rank 1) -> started (2) -> finished | cancelled (3).
 * Applying an event is a no-op unless it moves the job forward, so duplicates, a late `scheduled`
 * after `finished`, or a `started` before `scheduled` all converge to the same state.
 *
 * Tie between the two terminal states: `finished` supersedes `cancelled` (both rank 3, both
 * closed). Without that tie-break the final state of a job that got both would depend on their
 * arrival order; with it, the state is a function of the SET of events received, never of their
 * order (a join: advance is commutative, associative and idempotent).
 */
import { type JobEvent, type JobEventKind, jobKey, type Provider } from './job-event.js';

export type LedgerStateName = JobEventKind;

/** Data-model rank of a state: 1, 2, 3, 3 (stored as `rank` on the ledger item). */
export function rankOf(kind: JobEventKind): 1 | 2 | 3 {
  switch (kind) {
    case 'scheduled':
      return 1;
    case 'started':
      return 2;
    case 'finished':
    case 'cancelled':
      return 3;
  }
}

export function isTerminal(kind: JobEventKind): boolean {
  return rankOf(kind) === 3;
}

/** Total order used to decide if one event supersedes another (finished above cancelled). */
function precedence(kind: JobEventKind): number {
  return kind === 'finished' ? 4 : rankOf(kind);
}

/** True when a job in state `current` moves on an event of kind `next`. */
export function supersedes(next: JobEventKind, current: JobEventKind): boolean {
  return precedence(next) > precedence(current);
}

export interface LedgerState {
  readonly provider: Provider;
  readonly jobId: string;
  readonly queue: string;
  readonly state: LedgerStateName;
  readonly rank: 1 | 2 | 3;
  /** The occurredAt of the event that set this state. */
  readonly eventAt: string;
  readonly trace: JobEvent['trace'];
}

export function stateFromEvent(event: JobEvent): LedgerState {
  return {
    provider: event.provider,
    jobId: event.jobId,
    queue: event.queue,
    state: event.kind,
    rank: rankOf(event.kind),
    eventAt: event.occurredAt,
    trace: event.trace,
  };
}

/**
 * The job's next state, or undefined when the event changes nothing (duplicate, late or
 * out-of-order event). An unseen job is created in whatever state the event says (a `started`
 * before any `scheduled` creates it started; a `finished` creates it terminal, so a later
 * `scheduled` is a no-op).
 */
export function advance(current: LedgerState | undefined, event: JobEvent): LedgerState | undefined {
  if (current === undefined || supersedes(event.kind, current.state)) return stateFromEvent(event);
  return undefined;
}

/** One batch entry after coalescing: the event to write and every input event it stands for. */
export interface CoalescedEvent {
  readonly event: JobEvent;
  /** Indexes into the input array of the events this one represents (itself included). */
  readonly members: number[];
}

/**
 * Keeps, per job, only the furthest event of a batch (ties: the first one), so the batch costs
 * one write per job. Returns the groups in order of each job's first appearance.
 */
export function coalesceGroups(events: readonly JobEvent[]): CoalescedEvent[] {
  const byJob = new Map<string, { event: JobEvent; members: number[] }>();
  events.forEach((event, index) => {
    const key = jobKey(event);
    const group = byJob.get(key);
    if (!group) {
      byJob.set(key, { event, members: [index] });
      return;
    }
    group.members.push(index);
    if (supersedes(event.kind, group.event.kind)) group.event = event;
  });
  return [...byJob.values()];
}

/** coalesceGroups without the bookkeeping: the events to write. */
export function coalesce(events: readonly JobEvent[]): JobEvent[] {
  return coalesceGroups(events).map((group) => group.event);
}

/** Ledger item key of a job (data model: pk=`JOB#<provider>:<jobId>`, sk=`JOB`). */
export function jobPk(job: Pick<JobEvent, 'provider' | 'jobId'>): string {
  return `JOB#${jobKey(job)}`;
}

/** The two states in which a job is open (counted by the scaler). */
export type OpenStateName = 'scheduled' | 'started';

/** GSI `open-jobs` hash key while a job is open; undefined once terminal. */
export function openKeyOf(queue: string, state: OpenStateName): string;
export function openKeyOf(queue: string, state: LedgerStateName): string | undefined;
export function openKeyOf(queue: string, state: LedgerStateName): string | undefined {
  return isTerminal(state) ? undefined : `${queue}#${state}`;
}

/**
 * When a job entered its open state (epoch seconds): the provider's time of the event, or `now`
 * when that is missing or unreadable. Counting ignores open jobs older than a limit.
 *
 * For `started`, never earlier than when our webhook received it: the scaler takes it as a time
 * no earlier than the job really started (an agent made after it cannot be running the job), and
 * a provider's own start time is not always that (GitHub's workflow_job.started_at stays the time
 * the job was queued, also in the in_progress event).
 */
export function openAtOf(event: Pick<JobEvent, 'occurredAt' | 'kind' | 'receivedAt'>, now: Date): number {
  const parsed = Date.parse(event.occurredAt);
  const at = Number.isFinite(parsed) ? parsed : now.getTime();
  const received = event.kind === 'started' ? Date.parse(event.receivedAt) : Number.NaN;
  return Math.floor((Number.isFinite(received) ? Math.max(at, received) : at) / 1000);
}

/** Default age after which an open job no longer counts (GitHub cancels jobs queued 24 h). */
export const DEFAULT_OPEN_MAX_AGE_HOURS = 24;
