/**
 * In-memory LimiterStore with the DynamoDB one's semantics (each method's check-and-write runs
 * without an await in between, so it is atomic like a conditional write / transaction), for the
 * simulator and unit tests. `failNext` injects one failure of a named operation.
 */
import type {
  CorrectRequest,
  DispatchRecord,
  LimiterRecord,
  LimiterSnapshot,
  LimiterStore,
  ReserveRequest,
} from '../../../functions/core/stores.js';

type Operation =
  | 'snapshot'
  | 'reserve'
  | 'markSubmitted'
  | 'beginCreate'
  | 'settleCreate'
  | 'setTokens'
  | 'release'
  | 'correct';

/** Whether the stored dispatch's attempts are those the caller read (both absent counts). */
function sameAttempts(stored: DispatchRecord, read: DispatchRecord): boolean {
  return stored.attempts === read.attempts;
}

function dispatchKey(dispatch: Pick<DispatchRecord, 'queue' | 'dispatchId'>): string {
  return `${dispatch.queue}#${dispatch.dispatchId}`;
}

export class InMemoryLimiterStore implements LimiterStore {
  private readonly limiters = new Map<string, LimiterRecord>();
  private readonly dispatches = new Map<string, DispatchRecord>();
  private readonly failures = new Map<Operation, Error>();
  /** Calls per operation (simulator statistics). */
  readonly calls: Record<Operation, number> = {
    snapshot: 0,
    reserve: 0,
    markSubmitted: 0,
    beginCreate: 0,
    settleCreate: 0,
    setTokens: 0,
    release: 0,
    correct: 0,
  };

  /** The next call of `operation` throws `error` instead of doing anything. */
  failNext(operation: Operation, error: Error = new Error(`injected ${operation} failure`)): void {
    this.failures.set(operation, error);
  }

  private enter(operation: Operation): void {
    this.calls[operation]++;
    const error = this.failures.get(operation);
    if (error) {
      this.failures.delete(operation);
      throw error;
    }
  }

  async snapshot(): Promise<LimiterSnapshot> {
    this.enter('snapshot');
    return {
      limiters: [...this.limiters.values()].sort((a, b) => (a.queue < b.queue ? -1 : 1)).map((l) => ({ ...l })),
      dispatches: [...this.dispatches.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, d]) => ({ ...d })),
    };
  }

  async reserve(request: ReserveRequest): Promise<'reserved' | 'conflict'> {
    this.enter('reserve');
    const { queue, count, max, expectedVersion, dispatch } = request;
    if (!Number.isInteger(count) || count < 1)
      throw new RangeError(`reserve: count must be an integer >= 1, got ${count}`);
    if (dispatch.queue !== queue)
      throw new RangeError(`reserve: dispatch of queue ${dispatch.queue} for queue ${queue}`);
    if (count > max) return 'conflict';
    const limiter = this.limiters.get(queue);
    const limiterOk = limiter
      ? limiter.version === expectedVersion && limiter.inFlight <= max - count
      : expectedVersion === 0;
    if (!limiterOk || this.dispatches.has(dispatchKey(dispatch))) return 'conflict';
    this.limiters.set(queue, {
      queue,
      inFlight: (limiter?.inFlight ?? 0) + count,
      version: (limiter?.version ?? 0) + 1,
    });
    this.dispatches.set(dispatchKey(dispatch), { ...dispatch });
    return 'reserved';
  }

  async markSubmitted(dispatch: DispatchRecord): Promise<boolean> {
    this.enter('markSubmitted');
    const current = this.dispatches.get(dispatchKey(dispatch));
    if (!current) return false;
    this.dispatches.set(dispatchKey(dispatch), { ...current, status: 'submitted' });
    return true;
  }

  async beginCreate(dispatch: DispatchRecord, createsUntil: number): Promise<boolean> {
    this.enter('beginCreate');
    const current = this.dispatches.get(dispatchKey(dispatch));
    if (current?.status !== 'intent' || !sameAttempts(current, dispatch)) return false;
    this.dispatches.set(dispatchKey(dispatch), {
      ...current,
      attempts: (current.attempts ?? 1) + 1,
      createsUntil,
    });
    return true;
  }

  async settleCreate(dispatch: DispatchRecord, landed: boolean): Promise<boolean> {
    this.enter('settleCreate');
    const current = this.dispatches.get(dispatchKey(dispatch));
    if (!current) return false;
    this.dispatches.set(dispatchKey(dispatch), {
      ...current,
      settled: (current.settled ?? 0) + 1,
      ...(landed ? { status: 'submitted' as const } : {}),
    });
    return true;
  }

  async setTokens(dispatch: DispatchRecord, tokens: number): Promise<boolean> {
    this.enter('setTokens');
    const current = this.dispatches.get(dispatchKey(dispatch));
    if (!current || !sameAttempts(current, dispatch)) return false;
    this.dispatches.set(dispatchKey(dispatch), { ...current, tokens });
    return true;
  }

  async release(dispatch: DispatchRecord): Promise<boolean> {
    this.enter('release');
    const current = this.dispatches.get(dispatchKey(dispatch));
    if (!current) return true;
    if (!sameAttempts(current, dispatch)) return false;
    this.dispatches.delete(dispatchKey(dispatch));
    return true;
  }

  async correct(request: CorrectRequest): Promise<boolean> {
    this.enter('correct');
    const { queue, expectedVersion, inFlight } = request;
    if (!Number.isInteger(inFlight) || inFlight < 0)
      throw new RangeError(`correct: inFlight must be an integer >= 0, got ${inFlight}`);
    const limiter = this.limiters.get(queue);
    if (limiter ? limiter.version !== expectedVersion : expectedVersion !== 0) return false;
    this.limiters.set(queue, { queue, inFlight, version: (limiter?.version ?? 0) + 1 });
    return true;
  }
}
