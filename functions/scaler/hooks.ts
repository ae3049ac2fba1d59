/**
 * What a provider may add to the scaler's submit step, without the scaler knowing the provider:
 * credentials minted for a dispatch before its Job is created and handed to it after (GitHub's
 * just-in-time runner configurations), and housekeeping once per tick (removing registrations
 * whose agents are gone).
 *
 * The contract that keeps a crash between any two steps repairable:
 *  - beforeCreate runs before the Job exists; when it throws (the provider is rate limiting or
 *    down) no Job is created and the reservation stays an intent, retried next tick or released
 *    when its lease ends: no limiter token leaks;
 *  - afterCreate runs once the Job exists and BEFORE the dispatch is marked submitted, so when it
 *    throws, or the scaler dies before it, the next tick finds the Job with its dispatch still an
 *    intent and calls afterCreate again (it must be idempotent).
 */
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import type { ClusterJob } from '../core/limiter.js';
import type { DispatchRecord } from '../core/stores.js';

export interface TickView {
  /** Our Jobs as listed this tick. */
  readonly jobs: readonly ClusterJob[];
  /** The limiter's dispatch records as read this tick (intents and submitted). */
  readonly dispatches: readonly DispatchRecord[];
  /** Our agent pods as listed this tick, when the scaler lists them. */
  readonly pods?: readonly V1Pod[];
  readonly now: number;
}

export interface DispatchHooks {
  /** The Job to create for the dispatch (possibly changed). Throws to keep the intent for later. */
  beforeCreate(dispatch: DispatchRecord, job: V1Job): Promise<V1Job>;
  /** Finishes what the existing Job needs. Idempotent; throws to be called again next tick. */
  afterCreate(dispatch: DispatchRecord): Promise<void>;
  /** Once per tick after the reconcile. Its failures are logged, never fail the tick. */
  housekeeping?(view: TickView): Promise<void>;
}
