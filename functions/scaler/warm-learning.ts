/**
 * The learned warm pool in the product (WARM_POOL=learned): the scaler learns each queue's
 * arrivals per 15-minute bucket of the week (core/arrival-model.ts) online, and keeps the
 * learning in the ledger table (adapters/dynamodb/arrival-history-store.ts), so every container
 * and every later deployment start from it.
 *
 * - Each `scheduled` event the ledger applied (drain.ts, through the warm pool tracker) counts for
 *   today's scale at once and waits here, unsaved, for the next sync.
 * - sync(), once a tick before the decisions: per queue, when it has unsaved arrivals (at most
 *   every `saveEveryMs`), a bucket of its to learn, or nothing loaded yet: GetItem, merge
 *   (mergeArrivals: ended buckets are learned), PutItem on the version read, and the model takes
 *   the merged history. A write that lost to another invocation (ConditionalCheckFailed) reads
 *   again and re-applies the same arrivals, up to `attempts` times: skipping would lose them (each
 *   event is applied by one invocation only, the other never saw them); re-applying counts nothing
 *   twice, as they reach the item only with a write that succeeds. Still refused (or the table
 *   failing): they stay unsaved for the next tick and the tick goes on with the model it has.
 * - Until a whole day is learned the model gives no target and the recent arrivals size the pool
 *   (warm-pool.ts); after three weeks a bucket of the week replaces the bucket of the day.
 */
import {
  type ArrivalHistoryStore,
  ArrivalModel,
  type ArrivalModelOptions,
  BUCKET_MS,
  LEARN_GRACE_MS,
  MAX_OPEN_ARRIVALS,
  mergeArrivals,
} from '../core/arrival-model.js';
import { type LearnedArrivals, WARM_POOL_DEFAULTS, WarmPoolTracker } from '../core/warm-pool.js';
import { describeError } from '../shared/errors.js';
import type { ScalerPorts, ScalerSettings } from './ports.js';

export interface WarmLearningOptions {
  /** Unsaved arrivals are written at most this often per queue (default 60 s); ended buckets at once. */
  readonly saveEveryMs?: number;
  /** Reads and writes per queue and sync when writes conflict (default 3). */
  readonly attempts?: number;
  /** The arrival model's options (learnOnline is off: this class learns through the store). */
  readonly model?: Omit<ArrivalModelOptions, 'learnOnline'>;
}

export interface WarmSyncReport {
  /** DynamoDB requests sent (GetItem + PutItem). */
  readonly requests: number;
  /** Writes refused because another invocation wrote first (each re-applied, or left for the next tick). */
  readonly conflicts: number;
  /** Queues whose learning could not be read or saved, with why. */
  readonly failures: readonly { readonly queue: string; readonly message: string }[];
}

export class WarmLearning implements LearnedArrivals {
  readonly model: ArrivalModel;
  private readonly unsaved = new Map<string, number[]>();
  /** Per queue: when its learning was last read or written, and from when the stored open bucket needs learning. */
  private readonly synced = new Map<string, { at: number; learnAt: number }>();
  private readonly saveEveryMs: number;
  private readonly attempts: number;
  private readonly alpha: number | undefined;

  constructor(
    private readonly store: ArrivalHistoryStore,
    options: WarmLearningOptions = {},
  ) {
    this.model = new ArrivalModel({ ...options.model, learnOnline: false });
    this.saveEveryMs = options.saveEveryMs ?? 60_000;
    this.attempts = Math.max(1, options.attempts ?? 3);
    this.alpha = options.model?.alpha;
  }

  arrived(queue: string, at: number, now: number): void {
    this.model.arrived(queue, at, now);
    const list = this.unsaved.get(queue) ?? [];
    list.push(at);
    // The table failing for long: keep the newest, as the stored open buckets do.
    if (list.length > MAX_OPEN_ARRIVALS) list.shift();
    this.unsaved.set(queue, list);
  }

  target(queue: string, now: number, startupSeconds: number): number | undefined {
    return this.model.target(queue, now, startupSeconds);
  }

  scale(queue: string, now: number): number {
    return this.model.scale(queue, now);
  }

  /**
   * Learns, saves and loads the queues' history (see the file's comment), the queues at once (each
   * queue's item is its own); `horizonSeconds`: the queue's start-up + reaction.
   */
  async sync(
    queues: readonly string[],
    now: number,
    horizonSeconds: (queue: string) => number,
  ): Promise<WarmSyncReport> {
    const each = await Promise.all(queues.map((queue) => this.syncQueue(queue, now, horizonSeconds(queue))));
    return {
      requests: each.reduce((sum, r) => sum + r.requests, 0),
      conflicts: each.reduce((sum, r) => sum + r.conflicts, 0),
      failures: each.flatMap((r) => (r.failure ? [r.failure] : [])),
    };
  }

  private async syncQueue(
    queue: string,
    now: number,
    horizonSeconds: number,
  ): Promise<{ requests: number; conflicts: number; failure?: { queue: string; message: string } }> {
    let requests = 0;
    let conflicts = 0;
    const mine = this.unsaved.get(queue) ?? [];
    this.unsaved.set(queue, mine);
    const last = this.synced.get(queue);
    const due = last === undefined || now >= last.learnAt || (mine.length > 0 && now - last.at >= this.saveEveryMs);
    if (!due) return { requests, conflicts };
    try {
      for (let attempt = 0; attempt < this.attempts; attempt++) {
        const stored = await this.store.get(queue);
        requests++;
        const batch = [...mine];
        const merged = mergeArrivals(stored?.arrivals, batch, now, horizonSeconds, {
          ...(this.alpha === undefined ? {} : { alpha: this.alpha }),
        });
        const learnAt = (merged.open?.start ?? now) + BUCKET_MS + LEARN_GRACE_MS;
        // Nothing of ours to add and nothing to learn: what is stored is current.
        if (stored && batch.length === 0 && merged.history === stored.arrivals.history) {
          this.model.load(queue, stored.arrivals.history);
          this.synced.set(queue, { at: now, learnAt });
          break;
        }
        requests++;
        if (await this.store.put(queue, merged, stored?.version, new Date(now))) {
          this.model.load(queue, merged.history);
          // Saved: those arrivals are in the item now (any seen meanwhile stay for the next sync).
          mine.splice(0, batch.length);
          this.synced.set(queue, { at: now, learnAt });
          break;
        }
        conflicts++;
      }
    } catch (e) {
      return { requests, conflicts, failure: { queue, message: describeError(e) } };
    }
    return { requests, conflicts };
  }
}

/** A queue's horizon without a tracker: the start-up prior plus the reaction. */
const DEFAULT_HORIZON_SECONDS = WARM_POOL_DEFAULTS.startupPriorSeconds + WARM_POOL_DEFAULTS.reactionSeconds;

/** The ports of WARM_POOL=learned (scaler/wiring.ts): the tracker sized by the learning, and the learning. */
export function learnedWarmPool(
  store: ArrivalHistoryStore,
  options: WarmLearningOptions = {},
): { warmPool: WarmPoolTracker; warmLearning: WarmLearning } {
  const warmLearning = new WarmLearning(store, options);
  return { warmPool: new WarmPoolTracker({}, warmLearning), warmLearning };
}

/**
 * The tick's sync of the learning (before the decisions): a store that fails is logged and the
 * tick decides with the model it has (the recent arrivals until a day is learned).
 */
export async function syncWarmLearning(
  ports: Pick<ScalerPorts, 'warmLearning' | 'warmPool' | 'log' | 'now'>,
  settings: Pick<ScalerSettings, 'queues'>,
): Promise<WarmSyncReport | undefined> {
  const { warmLearning, warmPool } = ports;
  if (!warmLearning) return undefined;
  const report = await warmLearning.sync(
    settings.queues,
    ports.now(),
    (q) => warmPool?.horizonSeconds(q) ?? DEFAULT_HORIZON_SECONDS,
  );
  for (const f of report.failures) ports.log.warn('warm pool history not synced', { queue: f.queue, error: f.message });
  if (report.requests > 0)
    ports.log.debug('warm pool history synced', { requests: report.requests, conflicts: report.conflicts });
  return report;
}
