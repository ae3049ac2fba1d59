/**
 * The storage ports of the scaler: the job ledger and the in-flight limiter. Types only (pure):
 * the DynamoDB adapters (functions/adapters/dynamodb/) and the in-memory ones
 * (tools/fakes/memory/, for the simulator and unit tests) implement them with the same
 * semantics, checked by one shared contract test.
 */
import type { JobEvent } from './job-event.js';
import type { LedgerState } from './ledger.js';

/** The result of applying one INPUT event to the ledger. */
export interface ApplyOutcome {
  readonly eventId: string;
  /**
   * applied: the job's state is now durably at this event (or beyond it, when the event was
   *          merged with a further event of the same job in the same batch);
   * noop:    the job was already at or beyond this event (duplicate, late, reordered);
   * failed:  not applied (throttled past the SDK's retries, network, ...): leave the message in
   *          SQS so it is retried, then redriven to the dead-letter queue.
   */
  readonly result: 'applied' | 'noop' | 'failed';
  readonly error?: string;
}

export interface QueueCounts {
  /** CI jobs scheduled and not yet started, finished or cancelled. */
  readonly pending: number;
  /** CI jobs started and not yet finished or cancelled. */
  readonly running: number;
  /**
   * When each of those running CI jobs started (epoch seconds, as the ledger's openAt: the
   * provider's event time), when the store knows.
   */
  readonly runningSince?: readonly number[];
  /**
   * True when the store stopped counting at the caller's `cap` (CountOptions): `pending` and/or
   * `running` are then "at least" figures, and runningSince holds the latest start times only.
   */
  readonly capped?: boolean;
}

/** How far counts() counts. */
export interface CountOptions {
  /**
   * Per queue: stop counting pending jobs at this many, and keep only this many running jobs
   * (those that started last). The scaler passes a bound beyond which its decision is the same
   * (functions/scaler/reconcile.ts countCap), so a tick's reads do not grow with the backlog.
   * Queues not named here are counted in full.
   */
  readonly cap?: Readonly<Record<string, number>>;
}

/** A ledger item as stored (for inspection, tests and operators; the scaler needs only counts). */
export interface LedgerJobRecord extends LedgerState {
  readonly updatedAt: string;
  /** `<queue>#<state>` while scheduled or started. */
  readonly openKey?: string;
  /** While open: when the job entered that state (epoch seconds, the provider's event time). */
  readonly openAt?: number;
  /** TTL, epoch seconds: retention after the job closed, or after it opened if it never closes. */
  readonly expiresAt?: number;
}

export interface LedgerStore {
  /** Applies a batch of events; returns exactly one outcome per input event, in input order. */
  apply(events: readonly JobEvent[], now: Date): Promise<ApplyOutcome[]>;
  /**
   * Pending and running counts of each queue asked for (0/0 for a queue never seen). A job whose
   * last event happened more than the store's open-age limit before `now` is not counted: its
   * `finished`/`cancelled` was lost, and it must not keep an agent provisioned forever.
   */
  counts(queues: readonly string[], now: Date, options?: CountOptions): Promise<Record<string, QueueCounts>>;
}

/** The in-flight limiter of one queue: tokens held by live Jobs and by not-yet-visible intents. */
export interface LimiterRecord {
  readonly queue: string;
  readonly inFlight: number;
  /** +1 on every change: the optimistic-concurrency token of reserve() and correct(). */
  readonly version: number;
}

export type DispatchStatus = 'intent' | 'submitted';

/**
 * A dispatch: the limiter's record of one Kubernetes Job batch and the tokens it holds; status
 * intent until its Job is known to exist, then submitted.
 */
export interface DispatchRecord {
  readonly queue: string;
  /** Deterministic; the Kubernetes Job name is derived from it. */
  readonly dispatchId: string;
  readonly jobName: string;
  /** Agents asked for (the Job's completions = parallelism). */
  readonly count: number;
  /** Tokens this dispatch currently holds in the limiter. */
  readonly tokens: number;
  readonly status: DispatchStatus;
  /** Epoch milliseconds. */
  readonly createdAt: number;
  /** Epoch milliseconds: an intent with no Job after this is released. */
  readonly leaseUntil: number;
  /**
   * Creates of this dispatch started so far, each fenced by a conditional write before it is
   * issued (the reserve write fences the first). Absent on items written before fencing: then
   * treated as 1 attempt, unanswered, that can land until `leaseUntil`.
   */
  readonly attempts?: number;
  /** Creates of this dispatch whose answer was received (they can no longer land). */
  readonly settled?: number;
  /** Epoch milliseconds: no create of this dispatch can land after this. */
  readonly createsUntil?: number;
}

export interface LimiterSnapshot {
  readonly limiters: LimiterRecord[];
  readonly dispatches: DispatchRecord[];
}

export interface ReserveRequest {
  readonly queue: string;
  /** Tokens to take, >= 1. */
  readonly count: number;
  /** The queue's MAX_AGENTS: after the reservation inFlight <= max. */
  readonly max: number;
  /** The limiter's version the caller decided on; 0 when the item did not exist yet. */
  readonly expectedVersion: number;
  readonly dispatch: DispatchRecord;
}

export interface CorrectRequest {
  readonly queue: string;
  readonly expectedVersion: number;
  readonly inFlight: number;
}

export interface LimiterStore {
  /** Strongly consistent read of every limiter and dispatch item. */
  snapshot(): Promise<LimiterSnapshot>;
  /**
   * Atomically takes `count` tokens (only if the limiter is still at `expectedVersion` and
   * inFlight + count <= max) AND records the dispatch intent (only if no dispatch with that id
   * exists). 'conflict': nothing was written; re-read the snapshot and decide again.
   */
  reserve(request: ReserveRequest): Promise<'reserved' | 'conflict'>;
  /** Marks the dispatch submitted; false if the dispatch no longer exists. */
  markSubmitted(dispatch: DispatchRecord): Promise<boolean>;
  /**
   * Fences one more create of the dispatch: only if it still exists, is an intent, and its
   * `attempts` are still those read (then attempts + 1 and `createsUntil` set). false: issue no
   * create.
   */
  beginCreate(dispatch: DispatchRecord, createsUntil: number): Promise<boolean>;
  /**
   * One create of the dispatch was answered (settled + 1); `landed`: its Job exists, the
   * dispatch is submitted. false if the dispatch no longer exists.
   */
  settleCreate(dispatch: DispatchRecord, landed: boolean): Promise<boolean>;
  /**
   * Sets the tokens the dispatch holds, only if its `attempts` are still those read; false if
   * the dispatch no longer exists or a create was fenced since.
   */
  setTokens(dispatch: DispatchRecord, tokens: number): Promise<boolean>;
  /**
   * Deletes the dispatch item, only if its `attempts` are still those read (true also when it
   * is already gone); false when a create was fenced since. Does not touch the limiter: use
   * correct().
   */
  release(dispatch: DispatchRecord): Promise<boolean>;
  /** Sets inFlight (version + 1) only if the limiter is still at expectedVersion. */
  correct(request: CorrectRequest): Promise<boolean>;
}

/**
 * Where a CI job goes once its requirements were looked up (GitLab: the job's tag_list): a
 * served queue, or why none can take it. Kept so every event of the job lands in the same
 * place with one lookup per CI job.
 */
export type StoredRoute = { readonly queue: string } | { readonly unmet: string };

/** The CI job a route belongs to. */
export type RouteJob = Pick<JobEvent, 'provider' | 'jobId'>;

export interface RouteStore {
  /**
   * Strongly consistent read of the routes of these jobs: one entry per input job, in input
   * order (undefined: none stored). A job may be given twice. Throws when any of them could not
   * be read: then none is known.
   */
  getMany(jobs: readonly RouteJob[]): Promise<(StoredRoute | undefined)[]>;
  /**
   * Stores these routes (a job given twice: the last one). Throws when any of them could not be
   * written; those written stay written (a route never changes, so a retry writes the same).
   */
  putMany(routes: readonly { readonly job: RouteJob; readonly route: StoredRoute }[], now: Date): Promise<void>;
}
